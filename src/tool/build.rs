//! Generates the man page and the bash, zsh and fish completions of `vfio-persona` from its clap
//! definitions (src/args.rs) into OUT_DIR, and into $PVP_TOOL_SHARE when it is set (`make tool`
//! sets it to build/share): man/man1/vfio-persona.1 (and vfio-persona-COMMAND.1 for each
//! command), bash-completion/completions/vfio-persona,
//! zsh/site-functions/_vfio-persona, fish/vendor_completions.d/vfio-persona.fish.

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;

#[allow(dead_code)]
mod args {
    include!("src/args.rs");
}

const BIN: &str = "vfio-persona";

fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut cmd = args::Cli::command();
    cmd.build();
    let mut written = Vec::new();
    let man_dir = dir.join("man/man1");
    std::fs::create_dir_all(&man_dir)?;
    // vfio-persona.1, and one page per subcommand (vfio-persona-show.1, ...) as git does, each
    // with every option of that command; the main page lists them.
    let mut pages = vec![(BIN.to_string(), cmd.clone())];
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("{BIN}-{}", sub.get_name());
        let bin_name = format!("{BIN} {}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name).bin_name(bin_name)));
    }
    for (name, c) in pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(c).render(&mut page)?;
        let man = man_dir.join(format!("{name}.1"));
        std::fs::write(&man, page)?;
        written.push(man);
    }
    for (shell, sub, file) in [
        (Shell::Bash, "bash-completion/completions", BIN.to_string()),
        (Shell::Zsh, "zsh/site-functions", format!("_{BIN}")),
        (
            Shell::Fish,
            "fish/vendor_completions.d",
            format!("{BIN}.fish"),
        ),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, BIN, &mut buf);
        let p = d.join(file);
        std::fs::write(&p, buf)?;
        written.push(p);
    }
    Ok(written)
}

fn main() {
    println!("cargo:rerun-if-changed=src/args.rs");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PVP_TOOL_SHARE");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(e) = generate(&out.join("share")) {
        panic!("generating the man page and completions: {e}");
    }
    if let Some(share) = std::env::var_os("PVP_TOOL_SHARE") {
        let share = PathBuf::from(share);
        match generate(&share) {
            // Run again when one of them is deleted (`rm -rf build`).
            Ok(files) => {
                for f in files {
                    println!("cargo:rerun-if-changed={}", f.display());
                }
            }
            Err(e) => panic!("generating into {}: {e}", share.display()),
        }
    }
}
