fn main() {
    let code = rollbridge::cli::run(std::env::args_os().skip(1));
    std::process::exit(code);
}
