//! The loader protocol: how the app finds, checks and registers a plugin
//! library. For the host's loader (and the code [`export_plugin!`](crate::export_plugin)
//! generates); a plugin has no use for it.
//!
//! A plugin library exports two symbols ([`symbols`]):
//!
//! 1. `app_plugin_fingerprint`, a `#[repr(C)]` static [`Fingerprint`]: the
//!    SDK build the library was compiled against. The app reads it from
//!    the file, before the dynamic loader runs any of the library's code,
//!    and compares it with its own ([`Fingerprint::mismatch`]): a stale or
//!    foreign library is refused with the reason and the command to run.
//! 2. `app_plugin_register`, a Rust function (not a C-ABI one: the
//!    fingerprints matched, so both sides were built by the same compiler
//!    against the same SDK build) taking the plugin's configuration table
//!    and returning its [`PluginExport`](crate::PluginExport) or why not.
//!
//! [`LOADER_VERSION`] numbers this protocol.
//!
//! ```
//! use hookspecs::loader::{FINGERPRINT, library_fingerprint};
//!
//! // This program and the SDK library it runs on come from one build:
//! assert!(FINGERPRINT.mismatch(&library_fingerprint()).is_none());
//! ```

mod build {
    include!(concat!(env!("OUT_DIR"), "/fingerprint.rs"));
}

/// The version of the loading protocol: this struct and the two exports.
pub const LOADER_VERSION: u32 = 2;

/// Identifies one build of the SDK. A plugin exports the one it was built
/// against as the data symbol `app_plugin_fingerprint`, which the app reads
/// from the library file (with [`Fingerprint::from_bytes`]) before loading
/// it: so a stale or foreign library is named as such even when the dynamic
/// loader could not load it at all.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Fingerprint {
    /// [`LOADER_VERSION`].
    pub loader_version: u32,
    /// `rustc -V`, NUL-padded.
    pub rustc: [u8; 96],
    /// Hash of the engine's and the SDK's sources and manifests.
    pub sdk: u64,
    /// Cargo profile (`debug`, `release`), NUL-padded.
    pub profile: [u8; 16],
    /// Hash of target, optimisation, debug info, rustflags and features.
    pub build: u64,
    /// A function of this SDK build. Its symbol name carries the hash cargo
    /// gives this build (features, dependency versions, profile): a library
    /// built against another build of the SDK then fails to load instead of
    /// loading with other types. Not part of the comparison (its value is
    /// an address).
    pub build_marker: fn(),
}

/// The fingerprint compiled into the SDK library this process runs on. It
/// is not inlined: a binary comparing it with its own [`FINGERPRINT`]
/// (compiled into the binary) learns whether the library beside it was
/// rebuilt from other sources since the binary was linked.
#[inline(never)]
pub fn library_fingerprint() -> Fingerprint {
    FINGERPRINT
}

/// The function [`Fingerprint::build_marker`] points to.
#[inline(never)]
pub fn build_marker() {}

const fn padded<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() && i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The fingerprint of the SDK build this code is part of.
pub const FINGERPRINT: Fingerprint = Fingerprint {
    loader_version: LOADER_VERSION,
    rustc: padded(build::RUSTC),
    sdk: build::SDK,
    profile: padded(build::PROFILE),
    build: build::BUILD,
    build_marker,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

impl Fingerprint {
    /// The plain-data fields of a fingerprint stored in `bytes` (the
    /// contents of a library's `app_plugin_fingerprint` symbol, in this
    /// machine's byte order); `None` if `bytes` is too short for them.
    /// [`build_marker`](Self::build_marker) is left pointing to this SDK's.
    pub fn from_bytes(bytes: &[u8]) -> Option<Fingerprint> {
        use std::mem::offset_of;
        let field = |offset: usize, len: usize| bytes.get(offset..offset + len);
        let u64_at = |offset: usize| -> Option<u64> {
            Some(u64::from_ne_bytes(field(offset, 8)?.try_into().ok()?))
        };
        Some(Fingerprint {
            loader_version: u32::from_ne_bytes(
                field(offset_of!(Fingerprint, loader_version), 4)?
                    .try_into()
                    .ok()?,
            ),
            rustc: field(offset_of!(Fingerprint, rustc), 96)?.try_into().ok()?,
            sdk: u64_at(offset_of!(Fingerprint, sdk))?,
            profile: field(offset_of!(Fingerprint, profile), 16)?
                .try_into()
                .ok()?,
            build: u64_at(offset_of!(Fingerprint, build))?,
            build_marker,
        })
    }

    /// Why a plugin with fingerprint `other` cannot be loaded by a build
    /// with `self`'s, naming the first part that differs and what to do;
    /// `None` if they match.
    pub fn mismatch(&self, other: &Fingerprint) -> Option<String> {
        const REBUILD: &str = "rebuild it with the app: `cargo build` at the workspace root";
        if self.loader_version != other.loader_version {
            return Some(format!(
                "it speaks loader protocol {}, the app {}: {REBUILD}",
                other.loader_version, self.loader_version
            ));
        }
        if self.rustc != other.rustc {
            return Some(format!(
                "it was compiled by `{}`, the app by `{}`: {REBUILD}",
                text(&other.rustc),
                text(&self.rustc)
            ));
        }
        if self.profile != other.profile {
            let (theirs, ours) = (text(&other.profile), text(&self.profile));
            let flag = if ours == "release" { " --release" } else { "" };
            return Some(format!(
                "it is a `{theirs}` build, the app a `{ours}` build: plugins must come \
                 from the app's own build: `cargo build{flag}` at the workspace root, \
                 then take the library from target/{ours}/ (or use `app package`)"
            ));
        }
        if self.sdk != other.sdk {
            return Some(format!(
                "it was built against other sources of hookspecs/hooks-core (the SDK \
                 changed since): {REBUILD}"
            ));
        }
        if self.build != other.build {
            return Some(format!(
                "it was built with other flags or features: {REBUILD} (without RUSTFLAGS)"
            ));
        }
        None
    }
}

/// The symbol names the app looks up.
pub mod symbols {
    /// `static app_plugin_fingerprint: Fingerprint`, read from the file.
    pub const FINGERPRINT: &str = "app_plugin_fingerprint";
    /// `fn(&serde_json::Value) -> Result<PluginExport, String>`: gets the
    /// plugin's configuration table.
    pub const REGISTER: &[u8] = b"app_plugin_register\0";
}
