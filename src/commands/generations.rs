//! `ddc generations`: lists each image's generations (age, size, which nodes
//! boot them). The listing itself is `crate::generations`. Must not import `cli`.

use std::path::Path;

use crate::error::Error;

use super::{load, Loaded};

/// Prints the generations of `image`, or of every image.
pub(crate) fn run(file: &Path, image: Option<&str>) -> Result<(), Error> {
    let Loaded { cfg, .. } = load(file)?;
    let layers = crate::engine::cache_dirs(&cfg).root.join("images");
    let retired = crate::generations::retired(&cfg, &layers);
    print!("{}", crate::generations::report(&cfg, image, &retired)?);
    Ok(())
}
