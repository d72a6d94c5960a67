fn main() {
    let code = rollbridge::commands::main(std::env::args_os().skip(1));
    std::process::exit(code);
}
