package enasim

import "syscall"

// adviseHuge asks for transparent hugepages on mem (MADV_HUGEPAGE), which
// the kernel grants when THP is "always" or "madvise"; errors are ignored
// (ordinary pages work, only slower).
func adviseHuge(mem []byte) { _ = syscall.Madvise(mem, syscall.MADV_HUGEPAGE) }
