/* libquant/iq2_grids.h — the IQ2 codebooks and sign table (iq2_grids.c).
 *
 * slm_iq2_grids_init() (idempotent, thread-safe) expands the packed tables into the
 * forms ggml uses: 8 bytes per entry (element k in byte k, little-endian u64) and
 * the 7-bit -> 8-bit sign table (even number of minus signs). */
#ifndef SLM_IQ2_GRIDS_H
#define SLM_IQ2_GRIDS_H

#include <stdint.h>

/* packed: level index (0, 1, 2 for 8, 25, 43) of element k in bits 2k..2k+1 */
extern const uint16_t slm_iq2xxs_packed[256];
extern const uint16_t slm_iq2xs_packed[512];
extern const uint16_t slm_iq2s_packed[1024];

/* expanded by slm_iq2_grids_init() */
extern uint64_t slm_iq2xxs_grid[256];
extern uint64_t slm_iq2xs_grid[512];
extern uint64_t slm_iq2s_grid[1024];
extern uint8_t slm_ksigns_iq2xs[128];

void slm_iq2_grids_init(void);

#endif
