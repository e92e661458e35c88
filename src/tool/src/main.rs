//! `vfio-persona`: command-line front end.

fn main() {
    std::process::exit(2);
}
