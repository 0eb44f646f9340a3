//! The `ddc` binary: the library's `run`, on mimalloc. A one-node change
//! at 10,000 nodes spent a fifth of its instructions in glibc's malloc and
//! free (parsing the inventory, rendering 10,000 hosts, keying 10,000
//! tasks); mimalloc cuts that (README, Speed).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(ddc::run());
}
