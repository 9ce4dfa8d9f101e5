//! The scratch memory of a snapshot build. Compiling a repository allocates much that lives only
//! for the build (parsed documents, validators of versions no station uses, compile state); an
//! allocator may keep such memory resident after it is freed (mimalloc purges freed pages only
//! when the freeing thread allocates again, about a second later). The binary, which chooses the
//! allocator, installs hooks run around each sync that make it give that memory back.

use std::sync::OnceLock;

/// Run before and after each sync of the registry.
#[derive(Clone, Copy)]
pub struct ScratchHooks {
    pub before: fn(),
    pub after: fn(),
}

static HOOKS: OnceLock<ScratchHooks> = OnceLock::new();

/// Installs `hooks` for the whole process; the first installation wins.
pub fn install(hooks: ScratchHooks) {
    let _ = HOOKS.set(hooks);
}

/// Runs `build` between the installed hooks.
pub(super) fn around<T>(build: impl FnOnce() -> T) -> T {
    let hooks = HOOKS.get().copied();
    if let Some(hooks) = hooks {
        (hooks.before)();
    }
    let built = build();
    if let Some(hooks) = hooks {
        (hooks.after)();
    }
    built
}
