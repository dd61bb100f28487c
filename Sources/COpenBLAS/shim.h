// OpenBLAS's CBLAS interface (Debian: libopenblas-dev), plus the two runtime entry points that
// SwiftLM uses to choose the kernel set when OpenBLAS's own CPU detection falls short (see
// SwiftLMCore/BLAS/BLAS.swift). `openblas_get_corename` is declared by cblas.h itself.
#include <cblas.h>

void gotoblas_dynamic_init(void);
void gotoblas_dynamic_quit(void);
