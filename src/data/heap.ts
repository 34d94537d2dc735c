/**
 * Keeps glibc malloc from handing freed request-body memory back to the kernel after every GC.
 *
 * Node's HTTP parser copies each body chunk (up to 64 KiB) into a malloc'd buffer, freed only
 * when V8 collects it: ~32 MiB at a time, at the scavenges external memory triggers. glibc then
 * finds that much free memory at the top of its heap and trims it (trim threshold 128 KiB), so
 * the next 32 MiB of chunks fault in fresh zeroed pages. Profiled on a chunked 1 GiB push: ~17
 * trims of 32 MiB, page faults and clearing pages, 2-3 s of server CPU per GiB (half of it).
 *
 * glibc has no tunable reachable from JavaScript, but it adapts on its own: freeing a chunk it
 * had mmap'ed raises the mmap threshold to that chunk's size and the trim threshold to twice
 * it. One buffer of ~31 MiB (just under glibc's 32 MiB cap for this adjustment), allocated and
 * dropped once, is enough: from then on up to ~62 MiB of freed heap stays mapped and is reused.
 * Elsewhere (musl, macOS) it is an allocation of untouched pages that is simply freed again.
 */
const ADJUSTING_BYTES = 31 * 1024 * 1024;

let done = false;

export function retainFreedBufferMemory(): void {
  if (done) return;
  done = true;
  // Not touched: malloc maps it, free unmaps it (at the next GC), which is when glibc adapts.
  Buffer.allocUnsafeSlow(ADJUSTING_BYTES);
}
