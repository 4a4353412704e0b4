//! The C allocator's settings for processes that move large values (the master, the slaves,
//! the load generator): freed blocks of up to a few MiB stay in the heap for the next one.
//!
//! glibc serves a block of 128 KiB or more with `mmap` at first and raises that threshold
//! when such a block is freed, but it also gives the top of the heap back to the kernel once
//! more than twice the threshold is free there. With 1 MiB values allocated and freed for
//! every request, that trim and the next allocation faulted fresh zeroed pages in for every
//! WRITE: at 4 connections x 8 in flight, 75 page faults per 1 MiB write on the master, 92%
//! of them in the copy of the value into its shared buffer (`perf record -e page-faults`).
//! With the thresholds fixed here a master's faults over 400 such writes went from 32,661 to
//! 4,624 (`scripts/large-compare.sh` notes, README "Large values").
//!
//! The cost: up to [`TRIM_THRESHOLD`] bytes of freed memory at the top of the heap are kept
//! instead of returned (and blocks under [`MMAP_THRESHOLD`] are never served by `mmap`, so a
//! freed one may be kept behind a block still in use, as any small block is).

/// Blocks at least this large are served by `mmap` (and returned at `free`).
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Free memory at the top of the heap past this is returned to the kernel.
pub const TRIM_THRESHOLD: usize = 32 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;

    pub fn set(trim: usize, mmap: usize) -> bool {
        let (Ok(trim), Ok(mmap)) = (c_int::try_from(trim), c_int::try_from(mmap)) else {
            return false;
        };
        // SAFETY: mallopt takes two ints and only changes the allocator's parameters; glibc
        // documents it as callable at any time (it takes the arena locks itself).
        unsafe { mallopt(M_TRIM_THRESHOLD, trim) == 1 && mallopt(M_MMAP_THRESHOLD, mmap) == 1 }
    }
}

/// Set the thresholds above (glibc on Linux; elsewhere nothing is done). Call once at the
/// start of `main`. Whether glibc took them.
pub fn keep_freed_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        glibc::set(TRIM_THRESHOLD, MMAP_THRESHOLD)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    /// glibc accepts both settings (a wrong parameter number would return 0).
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_thresholds() {
        assert!(super::keep_freed_heap());
    }
}
