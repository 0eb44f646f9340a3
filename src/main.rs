fn main() {
    std::process::exit(ddc::run());
}
