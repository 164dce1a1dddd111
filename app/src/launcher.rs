//! `app`: checks that the app binary beside it (`app-main`) can start with
//! the SDK library it would load, then becomes it (`exec`, same process).
//! Started by `cargo run`, it first builds the whole workspace.
//!
//! Why build: `cargo run` builds only the package it runs (this launcher),
//! never `app-main` nor the plugin crates in `plugins/`, so a fresh clone
//! would have nothing to start and an edited plugin would start as it was
//! before the edit. A plain `cargo build` at the workspace root builds the
//! app and every plugin together (the one build ARCHITECTURE.md asks for),
//! and does nothing when nothing changed.
//!
//! Why: the app links the SDK dylib (`libhookspecs.so`), whose file name
//! carries no hash. A cargo command that rebuilds the SDK without relinking
//! the app (`cargo build -p <plugin>` after an edit of hookspecs or
//! hooks-core) leaves an app binary that the dynamic linker refuses before
//! `main` with `undefined symbol: _ZN...`, naming no fix. This binary
//! depends on std alone, so it always starts, and it says what to do.
//! (ARCHITECTURE.md, "Loading plugins".)

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use object::read::elf::{Dyn, FileHeader, Sym};

/// The real app's file name, beside this one.
const REAL: &str = "app-main";

/// The Rust libraries whose symbols the app needs from a matching build.
fn is_rust_library(name: &str) -> bool {
    name.starts_with("libhookspecs") || name.starts_with("libstd-")
}

fn main() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(&format!("cannot find the running binary: {e}")),
    };
    if let Some(cargo) = started_by_cargo_run() {
        if let Err(why) = build_workspace(&cargo, &exe) {
            return fail(&why);
        }
    }
    let real = exe.with_file_name(REAL);
    if !real.is_file() {
        return fail(&format!(
            "{} is missing: run `cargo build` at the workspace root (or copy it from the package)",
            real.display()
        ));
    }
    if let Err(why) = check(&real) {
        return fail(&why);
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("app"));
    let error = std::process::Command::new(&real)
        .arg0(arg0)
        .args(args)
        .exec();
    fail(&format!("cannot run {}: {error}", real.display()))
}

/// The cargo that ran this binary with `cargo run` in this workspace, if
/// it did: cargo sets these variables for the program it runs. The end-to-end
/// tests, which start the binary from a test process, have another package
/// name there; a packaged app has none.
fn started_by_cargo_run() -> Option<OsString> {
    let ours = std::env::var_os("CARGO_PKG_NAME")? == env!("CARGO_PKG_NAME")
        && std::env::var_os("CARGO_MANIFEST_DIR")? == env!("CARGO_MANIFEST_DIR");
    ours.then(|| std::env::var_os("CARGO"))?
}

/// `cargo build` at the workspace root, for the profile (and target, if
/// one was given) this binary was built for: the folders around it say which.
fn build_workspace(cargo: &OsString, exe: &Path) -> Result<(), String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the app crate has no parent folder")?;
    let profile_dir = exe.parent().ok_or("the binary has no folder")?;
    // target/[<triple>/]<profile>/app; cargo marks its target root.
    let root = profile_dir
        .ancestors()
        .skip(1)
        .take(2)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .ok_or_else(|| format!("{} is not in a cargo target folder", exe.display()))?;
    let mut build = std::process::Command::new(cargo);
    build.arg("build").arg("--target-dir").arg(root);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some(profile) => {
            build.args(["--profile", profile]);
        }
        None => return Err(format!("{} has no profile folder", exe.display())),
    }
    if let Some(triple) = profile_dir.parent().filter(|dir| *dir != root) {
        build
            .arg("--target")
            .arg(triple.file_name().unwrap_or_default());
    }
    // The variables cargo set for this program would reach build scripts
    // that watch them, which would then rerun on every plain `cargo build`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_") || key.starts_with("CARGO_MANIFEST_") {
            build.env_remove(&*key);
        }
    }
    let status = build
        .current_dir(workspace)
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("cargo build of the workspace failed (its errors are above)".into())
    }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::from(2)
}

/// Every Rust symbol `real` needs is defined by the Rust libraries the
/// dynamic linker would give it (found as it finds them: LD_LIBRARY_PATH,
/// then the binary's RUNPATH).
fn check(real: &Path) -> Result<(), String> {
    let binary = Elf::open(real)?;
    let (needed, runpath) = binary.dynamic()?;
    let origin = real.parent().unwrap_or(Path::new("."));
    let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(
        runpath
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d.replace("$ORIGIN", &origin.to_string_lossy()))),
    );
    let mut libraries = Vec::new();
    for name in needed.iter().filter(|n| is_rust_library(n)) {
        let Some(path) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) else {
            return Err(format!(
                "{} needs {name}, which is not beside it nor on its library path: \
                 run `cargo build` at the workspace root (or copy the whole package)",
                real.display()
            ));
        };
        libraries.push((path.clone(), Elf::open(&path)?));
    }
    // A check that passed is remembered beside the binary, for exactly
    // these files (where that folder is writable): the next start of an
    // unchanged build skips it.
    let files = std::iter::once(real).chain(libraries.iter().map(|(path, _)| path.as_path()));
    let stamp = files.map(identity).collect::<Vec<_>>().join("\n");
    let remembered = real.with_file_name(".app-main.checked");
    if std::fs::read_to_string(&remembered).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    // The binary's needs first (some thousands, sorted), then strike off
    // what the libraries define (tens of thousands).
    let mut needs: Vec<(Vec<u8>, bool)> = Vec::new();
    binary.symbols(|name, undefined, weak| {
        let rust = name.starts_with(b"_ZN") || name.starts_with(b"_R");
        if undefined && !weak && rust {
            needs.push((name.to_vec(), false));
        }
    })?;
    needs.sort_unstable();
    for (_, library) in &libraries {
        library.symbols(|name, undefined, _| {
            if !undefined {
                if let Ok(i) = needs.binary_search_by(|(n, _)| n.as_slice().cmp(name)) {
                    needs[i].1 = true;
                }
            }
        })?;
    }
    let missing: Vec<String> = needs
        .iter()
        .filter(|(_, found)| !found)
        .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
        .collect();
    let Some(first) = missing.first() else {
        let _ = std::fs::write(&remembered, stamp);
        return Ok(());
    };
    let sdk = libraries
        .iter()
        .find(|(path, _)| path.to_string_lossy().contains("libhookspecs"))
        .map_or_else(
            || "libhookspecs.so".into(),
            |(path, _)| path.display().to_string(),
        );
    Err(format!(
        "{} cannot start: the SDK library {sdk} is another build than the one it was linked \
         with ({} of its symbols are missing, e.g. `{first}`). The SDK was rebuilt without the \
         app, by a cargo command that builds some packages only (such as `cargo build -p \
         <plugin>` after an edit of hookspecs or hooks-core). Fix: `cargo build` at the \
         workspace root, which rebuilds the app and every plugin together.",
        real.display(),
        missing.len(),
    ))
}

/// What identifies one build of a file: path, size, modification time, inode.
fn identity(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "{} {} {}.{} {}",
            path.display(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ino()
        ),
        Err(_) => format!("{} missing", path.display()),
    }
}

/// An ELF file, read through a cache that reads only the parts parsed (the
/// dynamic section and symbols), not the whole file (large in debug builds,
/// with a symbol table of its own that this never reads).
struct Elf {
    path: PathBuf,
    file: std::fs::File,
    data: object::ReadCache<std::fs::File>,
}

type Header = object::elf::FileHeader64<object::Endianness>;

impl Elf {
    fn open(path: &Path) -> Result<Elf, String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(Elf {
            path: path.to_path_buf(),
            data: object::ReadCache::new(file.try_clone().map_err(|e| e.to_string())?),
            file,
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> String {
        format!("{} is not a readable ELF file: {e}", self.path.display())
    }

    fn sections(
        &self,
    ) -> Result<
        (
            object::Endianness,
            object::read::elf::SectionTable<'_, Header, &object::ReadCache<std::fs::File>>,
        ),
        String,
    > {
        let header = Header::parse(&self.data).map_err(|e| self.error(e))?;
        let endian = header.endian().map_err(|e| self.error(e))?;
        let sections = header
            .sections(endian, &self.data)
            .map_err(|e| self.error(e))?;
        Ok((endian, sections))
    }

    /// The DT_NEEDED names and the DT_RUNPATH (or DT_RPATH).
    fn dynamic(&self) -> Result<(Vec<String>, String), String> {
        use object::elf;
        let (endian, sections) = self.sections()?;
        let Some((entries, index)) = sections
            .dynamic(endian, &self.data)
            .map_err(|e| self.error(e))?
        else {
            return Ok((Vec::new(), String::new()));
        };
        let strings = sections
            .strings(endian, &self.data, index)
            .map_err(|e| self.error(e))?;
        let (mut needed, mut runpath) = (Vec::new(), String::new());
        for entry in entries {
            let tag = entry.tag32(endian).unwrap_or(0);
            if !matches!(tag, elf::DT_NEEDED | elf::DT_RUNPATH | elf::DT_RPATH) {
                continue;
            }
            let offset = u32::try_from(entry.d_val(endian)).map_err(|e| self.error(e))?;
            let value = strings.get(offset).map_err(|()| self.error("bad string"))?;
            let value = String::from_utf8_lossy(value).into_owned();
            if tag == elf::DT_NEEDED {
                needed.push(value);
            } else {
                runpath = value;
            }
        }
        Ok((needed, runpath))
    }

    /// Calls `each(name, undefined, weak)` for every dynamic symbol.
    fn symbols(&self, mut each: impl FnMut(&[u8], bool, bool)) -> Result<(), String> {
        use object::elf;
        use object::read::elf::SectionHeader;
        let (endian, sections) = self.sections()?;
        let Some((_, dynsym)) = sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.sh_type(endian) == elf::SHT_DYNSYM)
        else {
            return Ok(());
        };
        // Each section in one read (the cache would read every name alone).
        let read = |section: &object::elf::SectionHeader64<object::Endianness>| {
            use std::os::unix::fs::FileExt;
            let (offset, size) = section.file_range(endian).unwrap_or_default();
            let mut bytes = vec![0; usize::try_from(size).map_err(|e| self.error(e))?];
            self.file
                .read_exact_at(&mut bytes, offset)
                .map_err(|e| self.error(e))?;
            Ok::<_, String>(bytes)
        };
        let table = read(dynsym)?;
        let strtab = sections
            .section(object::SectionIndex(dynsym.sh_link(endian) as usize))
            .map_err(|e| self.error(e))?;
        let names = read(strtab)?;
        let strings = object::StringTable::new(&names[..], 0, names.len() as u64);
        let symbols: &[object::elf::Sym64<object::Endianness>] =
            object::pod::slice_from_all_bytes(&table).map_err(|()| self.error("bad symbols"))?;
        for symbol in symbols {
            let name = symbol.name(endian, strings).map_err(|e| self.error(e))?;
            let undefined = symbol.st_shndx(endian) == elf::SHN_UNDEF;
            each(name, undefined, symbol.st_bind() == elf::STB_WEAK);
        }
        Ok(())
    }
}
