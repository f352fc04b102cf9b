/* bench/svg.c — small self-contained SVG charts (scatter with a Pareto front,
 * bars) for `slm compare` and `slm bench -o svg`. Output is well-formed XML
 * with a title, labelled axes and tick values; labels are XML-escaped. */
#include "bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    slm_buf s;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (slm_buf_vprintf(&b->s, fmt, ap))
        b->oom = 1;
    va_end(ap);
}

static void sb_text(sbuf *b, const char *s) /* XML-escaped */
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '&': sb_printf(b, "&amp;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        case '\'': sb_printf(b, "&apos;"); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                sb_printf(b, "%c", *s);
        }
    }
}

static char *sb_done(sbuf *b)
{
    if (b->oom) {
        slm_buf_free(&b->s);
        return NULL;
    }
    return b->s.p;
}

int bench_pareto(const bench_point *pts, int n, int *idx)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        int dominated = 0;
        for (int j = 0; j < n && !dominated; j++)
            if (j != i && pts[j].x <= pts[i].x && pts[j].y <= pts[i].y && (pts[j].x < pts[i].x || pts[j].y < pts[i].y))
                dominated = 1;
        if (!dominated)
            idx[k++] = i;
    }
    /* sort by x for drawing */
    for (int a = 1; a < k; a++)
        for (int b = a; b > 0 && pts[idx[b]].x < pts[idx[b - 1]].x; b--) {
            int t = idx[b];
            idx[b] = idx[b - 1];
            idx[b - 1] = t;
        }
    return k;
}

enum { W = 760, H = 480, ML = 100, MR = 40, MT = 50, MB = 70 };

static void header(sbuf *b, const char *title)
{
    sb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                 "font-family=\"sans-serif\" font-size=\"12\">\n"
                 "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
              W, H, W, H, W, H);
    sb_printf(b, "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", W / 2);
    sb_text(b, title);
    sb_printf(b, "</text>\n");
}

/* A "nice" tick step (1, 2 or 5 x 10^k) giving about `want` intervals over [lo, hi]. */
static double nice_step(double lo, double hi, int want)
{
    double raw = (hi - lo) / want;
    if (!(raw > 0) || !isfinite(raw))
        return 1;
    double p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void y_tick(sbuf *b, int py, int pw, double v)
{
    sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>"
                 "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3g</text>\n",
              ML, py, ML + pw, py, ML - 6, py + 4, v);
}

/* Axes, grid and tick labels at round values: linear axes every 1/2/5 x 10^k; a
 * log axis at 1, 2, 5 x 10^k (decades only when it spans many). */
static void axes(sbuf *b, const char *xl, const char *yl, double x0, double x1, double y0, double y1, int log_y,
                 int x_ticks)
{
    int pw = W - ML - MR, ph = H - MT - MB;
    sb_printf(b, "<g id=\"axes\" stroke=\"black\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                 "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/></g>\n",
              ML, MT + ph, ML + pw, MT + ph, ML, MT, ML, MT + ph);
    if (log_y && y0 > 0 && y1 > y0) {
        double l0 = log10(y0), l1 = log10(y1);
        int decades_only = l1 - l0 > 4;
        for (int e = (int)floor(l0); e <= (int)ceil(l1); e++)
            for (int m = 1; m <= 5; m += (m == 1 ? 1 : 3)) { /* 1, 2, 5 */
                if (decades_only && m != 1)
                    continue;
                double v = m * pow(10, e);
                if (v < y0 || v > y1)
                    continue;
                y_tick(b, MT + ph - (int)((log10(v) - l0) / (l1 - l0) * ph), pw, v);
            }
    } else if (y1 > y0) {
        double st = nice_step(y0, y1, 5);
        for (double v = ceil(y0 / st) * st; v <= y1 + st * 1e-9; v += st)
            y_tick(b, MT + ph - (int)((v - y0) / (y1 - y0) * ph), pw, fabs(v) < st * 1e-9 ? 0 : v);
    }
    if (x_ticks && x1 > x0) {
        double st = nice_step(x0, x1, 6);
        for (double v = ceil(x0 / st) * st; v <= x1 + st * 1e-9; v += st) {
            int px = ML + (int)((v - x0) / (x1 - x0) * pw);
            sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>"
                         "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.3g</text>\n",
                      px, MT + ph, px, MT + ph + 5, px, MT + ph + 18, fabs(v) < st * 1e-9 ? 0 : v);
        }
    }
    sb_printf(b, "<text id=\"x-label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">", ML + pw / 2, H - 20);
    sb_text(b, xl);
    sb_printf(b, "</text>\n<text id=\"y-label\" x=\"18\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 18 %d)\">",
              MT + ph / 2, MT + ph / 2);
    sb_text(b, yl);
    sb_printf(b, "</text>\n");
}

char *bench_svg_scatter(const char *title, const char *x_label, const char *y_label, const bench_point *pts, int n,
                        int pareto, int log_y)
{
    sbuf b = {0};
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(pts[i].x) || !isfinite(pts[i].y) || (log_y && pts[i].y <= 0))
            continue;
        x0 = fmin(x0, pts[i].x);
        x1 = fmax(x1, pts[i].x);
        y0 = fmin(y0, pts[i].y);
        y1 = fmax(y1, pts[i].y);
    }
    if (!(x0 <= x1)) {
        x0 = 0;
        x1 = 1;
        y0 = log_y ? 1e-3 : 0;
        y1 = 1;
    }
    double dx = x1 - x0 > 0 ? x1 - x0 : fmax(fabs(x0), 1);
    x0 -= 0.08 * dx;
    x1 += 0.08 * dx;
    if (log_y) {
        y0 /= 2;
        y1 *= 2;
    } else {
        double dy = y1 - y0 > 0 ? y1 - y0 : fmax(fabs(y0), 1);
        y0 -= 0.08 * dy;
        y1 += 0.08 * dy;
    }
    header(&b, title);
    axes(&b, x_label, y_label, x0, x1, y0, y1, log_y, 1);
    int pw = W - ML - MR, ph = H - MT - MB;
#define PX(v) (ML + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (MT + ph - (log_y ? (log10(v) - log10(y0)) / (log10(y1) - log10(y0)) : ((v) - y0) / (y1 - y0)) * ph)
    int *front = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    int nf = 0;
    if (pareto && front) {
        nf = bench_pareto(pts, n, front);
        sb_printf(&b, "<polyline id=\"pareto-front\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"");
        for (int k = 0; k < nf; k++)
            if (isfinite(pts[front[k]].y) && (!log_y || pts[front[k]].y > 0))
                sb_printf(&b, "%.1f,%.1f ", PX(pts[front[k]].x), PY(pts[front[k]].y));
        sb_printf(&b, "\"/>\n");
    }
    for (int i = 0; i < n; i++) {
        if (!isfinite(pts[i].x) || !isfinite(pts[i].y) || (log_y && pts[i].y <= 0))
            continue;
        int on = 0;
        for (int k = 0; k < nf; k++)
            on |= front[k] == i;
        sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"%s/>", PX(pts[i].x), PY(pts[i].y),
                  on ? 6 : 4, on ? "#d62728" : "#1f77b4", on ? " class=\"pareto\"" : "");
        int right = PX(pts[i].x) > ML + 0.7 * pw; /* labels of right-hand points go to their left */
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\"%s>", PX(pts[i].x) + (right ? -8 : 8), PY(pts[i].y) - 8,
                  right ? " text-anchor=\"end\"" : "");
        sb_text(&b, pts[i].label);
        sb_printf(&b, "</text>\n");
    }
    if (pareto)
        sb_printf(&b, "<text x=\"%d\" y=\"%d\" fill=\"#d62728\" text-anchor=\"end\">red: Pareto front (smaller and better)</text>\n",
                  ML + pw - 10, MT + 14); /* top right: the dominated corner, where no point is on the front */
#undef PX
#undef PY
    free(front);
    sb_printf(&b, "</svg>\n");
    return sb_done(&b);
}

char *bench_svg_bars(const char *title, const char *y_label, const bench_point *bars, int n)
{
    sbuf b = {0};
    double y1 = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(bars[i].y))
            y1 = fmax(y1, bars[i].y);
    if (y1 <= 0)
        y1 = 1;
    y1 *= 1.1;
    header(&b, title);
    axes(&b, "test", y_label, 0, 1, 0, y1, 0, 0);
    int pw = W - ML - MR, ph = H - MT - MB;
    double slot = n > 0 ? (double)pw / n : pw;
    for (int i = 0; i < n; i++) {
        double v = isfinite(bars[i].y) && bars[i].y > 0 ? bars[i].y : 0;
        double h = v / y1 * ph, x = ML + i * slot + slot * 0.15;
        sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#1f77b4\"/>", x,
                  MT + ph - h, slot * 0.7, h);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.1f</text>", x + slot * 0.35,
                  MT + ph - h - 4, v);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">", x + slot * 0.35,
                  MT + ph + 16 + (i % 2) * 12);
        sb_text(&b, bars[i].label);
        sb_printf(&b, "</text>\n");
    }
    sb_printf(&b, "</svg>\n");
    return sb_done(&b);
}
