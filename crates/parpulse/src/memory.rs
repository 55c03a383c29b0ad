//! Process memory settings.

/// Keeps large allocations returnable to the system.
///
/// glibc's malloc raises its mmap threshold each time a large mapped block is freed (up
/// to 32 MiB); from then on, checkpoint-sized buffers (the rows of 200,000 events) come
/// from the heap and their pages stay in the process after they are freed. The
/// aggregator's peak RSS then grew with the checkpoint size: 295 MiB with 200,000-event
/// checkpoints against 235 MiB with this fixed 128 KiB threshold (docs/BENCHMARKS.md).
/// Blocks of 128 KiB and more get their own mappings, unmapped when freed.
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; called at start-up, before
        // any other thread exists.
        let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
        if set != 1 {
            tracing::warn!("mallopt(M_MMAP_THRESHOLD) refused; peak memory may be higher");
        }
    }
}
