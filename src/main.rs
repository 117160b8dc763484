//! The `panebus` binary: everything happens in [`panebus::cli::main`].

fn main() -> std::process::ExitCode {
    panebus::cli::main()
}
