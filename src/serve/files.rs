//! Static files of the document root (the TFTP root) for `GET`/`HEAD`:
//! kernels, initrds and iPXE scripts that `ddc build` wrote. A path with a
//! `..`, `.`, empty or dot-prefixed part, a `%` or a backslash is refused;
//! the file is opened beneath the root by the kernel (`openat2` with
//! `RESOLVE_BENEATH`), so no symlink leads out of it; only regular files are
//! served (no listing), streamed from the open file.

use std::path::Path;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};

/// The path relative to the root, if it is one the service serves.
pub(crate) fn clean(uri_path: &str) -> Option<&str> {
    let rel = uri_path.strip_prefix('/')?;
    let ok = !rel.is_empty()
        && !rel.contains(['%', '\\', '\0'])
        && rel.split('/').all(|p| !p.is_empty() && !p.starts_with('.'));
    ok.then_some(rel)
}

/// Opens `rel` beneath `root`: a regular file, or None.
fn open(root: &Path, rel: &str) -> std::io::Result<Option<(std::fs::File, u64)>> {
    let dir = rfs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = match rfs::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::XDEV | rustix::io::Errno::NOTDIR) => {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    let st = rfs::fstat(&fd)?;
    if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
        return Ok(None);
    }
    Ok(Some((std::fs::File::from(fd), st.st_size as u64)))
}

/// The response for `GET /rel`: the file streamed, or 404.
pub(crate) async fn serve(root: &Path, rel: &str) -> Response {
    let (root, owned) = (root.to_path_buf(), rel.to_string());
    let opened = tokio::task::spawn_blocking(move || open(&root, &owned)).await;
    let (file, size) = match opened {
        Ok(Ok(Some(f))) => f,
        Ok(Ok(None)) => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(path = rel, "cannot open: {e}");
            return (StatusCode::NOT_FOUND, "not found\n").into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let mut resp = Response::new(Body::from_stream(stream));
    let kind = if rel.ends_with(".ipxe") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_that_could_leave_the_root() {
        assert_eq!(clean("/ipxe/boot.ipxe"), Some("ipxe/boot.ipxe"));
        for bad in [
            "/",
            "/../etc/passwd",
            "/a/../../b",
            "/./a",
            "/.hidden",
            "/a//b",
            "/a/",
            "/a%2e",
            "/a\\b",
            "relative",
        ] {
            assert_eq!(clean(bad), None, "{bad}");
        }
    }
}
