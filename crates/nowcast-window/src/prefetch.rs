//! Software prefetch: asks the CPU to start loading a cache line that will be read soon.
//! A hint only — it never faults and changes no result; a no-op off x86-64.

/// Prefetches the cache line holding `*x` into all cache levels.
#[inline(always)]
pub(crate) fn read<T>(x: &T) {
    addr((x as *const T).cast::<u8>());
}

/// Prefetches every cache line `*x` spans.
#[inline(always)]
pub(crate) fn whole<T>(x: &T) {
    let p = (x as *const T).cast::<u8>();
    let mut off = 0;
    while off < std::mem::size_of::<T>() {
        addr(p.wrapping_add(off));
        off += 64;
    }
    addr(p.wrapping_add(std::mem::size_of::<T>().saturating_sub(1)));
}

/// Prefetches the cache line holding address `p` (any address: a prefetch never faults).
#[inline(always)]
fn addr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` does not access memory architecturally (it cannot fault) and
    // SSE is part of the x86-64 baseline, so the intrinsic is always available.
    #[allow(unsafe_code)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches the cache lines of `s`, at most `max_lines` of them from the start, and its
/// last line.
#[inline]
pub(crate) fn slice<T>(s: &[T], max_lines: usize) {
    let step = (64 / std::mem::size_of::<T>().max(1)).max(1);
    for i in (0..s.len()).step_by(step).take(max_lines) {
        read(&s[i]);
    }
    if let Some(last) = s.last() {
        read(last);
    }
}
