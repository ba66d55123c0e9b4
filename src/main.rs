fn main() -> std::process::ExitCode {
    vaten::cli::main()
}
