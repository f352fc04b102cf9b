/* base/types.c — block geometry and names of ggml tensor type ids.
 *
 * Facts (ids, elements per block, bytes per block, names) match ggml's
 * ggml.h enum and its type_traits table; block byte counts follow from the
 * block structs in ggml-common.h. Retired ids (4, 5, 31..33, 36..38) are
 * unknown here, as they are to current llama.cpp. */
#include "base.h"

typedef struct type_info {
    const char *name;
    int block_size;     /* elements per block */
    size_t block_bytes; /* bytes per block */
} type_info;

static const type_info k_types[SLM_TYPE_COUNT] = {
    [0]  = { "f32",     1,   4 },
    [1]  = { "f16",     1,   2 },
    [2]  = { "q4_0",    32,  18 },
    [3]  = { "q4_1",    32,  20 },
    [6]  = { "q5_0",    32,  22 },
    [7]  = { "q5_1",    32,  24 },
    [8]  = { "q8_0",    32,  34 },
    [9]  = { "q8_1",    32,  36 },
    [10] = { "q2_K",    256, 84 },
    [11] = { "q3_K",    256, 110 },
    [12] = { "q4_K",    256, 144 },
    [13] = { "q5_K",    256, 176 },
    [14] = { "q6_K",    256, 210 },
    [15] = { "q8_K",    256, 292 },
    [16] = { "iq2_xxs", 256, 66 },
    [17] = { "iq2_xs",  256, 74 },
    [18] = { "iq3_xxs", 256, 98 },
    [19] = { "iq1_s",   256, 50 },
    [20] = { "iq4_nl",  32,  18 },
    [21] = { "iq3_s",   256, 110 },
    [22] = { "iq2_s",   256, 82 },
    [23] = { "iq4_xs",  256, 136 },
    [24] = { "i8",      1,   1 },
    [25] = { "i16",     1,   2 },
    [26] = { "i32",     1,   4 },
    [27] = { "i64",     1,   8 },
    [28] = { "f64",     1,   8 },
    [29] = { "iq1_m",   256, 56 },
    [30] = { "bf16",    1,   2 },
    [34] = { "tq1_0",   256, 54 },
    [35] = { "tq2_0",   256, 66 },
    [39] = { "mxfp4",   32,  17 },
};

static const type_info *lookup(uint32_t type)
{
    if (type >= SLM_TYPE_COUNT || !k_types[type].name)
        return NULL;
    return &k_types[type];
}

int slm_type_block_size(uint32_t type)
{
    const type_info *t = lookup(type);
    return t ? t->block_size : 0;
}

size_t slm_type_block_bytes(uint32_t type)
{
    const type_info *t = lookup(type);
    return t ? t->block_bytes : 0;
}

const char *slm_type_name(uint32_t type)
{
    const type_info *t = lookup(type);
    return t ? t->name : NULL;
}

size_t slm_type_row_bytes(uint32_t type, uint64_t n)
{
    const type_info *t = lookup(type);
    if (!t || n % (uint64_t)t->block_size != 0)
        return 0;
    uint64_t blocks = n / (uint64_t)t->block_size;
    /* overflow: report 0 rather than a wrapped size */
    if (blocks > SIZE_MAX / t->block_bytes)
        return 0;
    return (size_t)(blocks * t->block_bytes);
}
