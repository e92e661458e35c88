//! `vfio-persona`: derive, compile, show, diff and check personas; inspect migration streams.
//!
//! Exit codes: 0 yes/ok, 1 no (incompatible, check failed, stream rejected), 2 bad input or
//! usage. A panic would be a bug; it is caught and also exits 2.

fn main() {
    let code = std::panic::catch_unwind(vfio_persona::cli::main).unwrap_or_else(|_| {
        eprintln!("vfio-persona: internal error (this is a bug)");
        2
    });
    std::process::exit(code);
}
