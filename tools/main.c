/* tools/main.c — `slm`: one binary, git-style subcommands behind one table. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "libquant.h"
#include "version.h"

#define SLM_VERSION "0.1.0"

int cmd_convert(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_compare(int argc, char **argv);
extern const char help_compare[];
int cmd_run(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_imatrix(int argc, char **argv);
extern const char help_imatrix[];
extern const char help_quantize[];
int cmd_keygen(int argc, char **argv), cmd_trust(int argc, char **argv), cmd_sign(int argc, char **argv);
int cmd_verify(int argc, char **argv), cmd_bundle(int argc, char **argv), cmd_install(int argc, char **argv);
extern const char help_keygen[], help_trust[], help_sign[], help_verify[], help_bundle[], help_install[];
extern const char help_run[], help_perplexity[];
int cmd_serve(int argc, char **argv), cmd_telemetry(int argc, char **argv);
extern const char help_serve[], help_telemetry[];
int cmd_push(int argc, char **argv), cmd_pull(int argc, char **argv), cmd_update(int argc, char **argv);
extern const char help_push[], help_pull[], help_update[];
int cmd_tuf(int argc, char **argv), cmd_intoto(int argc, char **argv);
extern const char help_tuf[], help_intoto[];
extern const char help_convert[], help_inspect[], help_bench[];
int cmd_template(int argc, char **argv);
int cmd_chat(int argc, char **argv);
extern const char help_chat[];
extern const char help_template[];
int cmd_tokenize(int argc, char **argv);
extern const char help_tokenize[];
int cmd_sweep(int argc, char **argv);
extern const char help_sweep[];

static const slm_cmd commands[] = {
    {"convert", cmd_convert, "convert a Hugging Face checkpoint (safetensors) to GGUF", help_convert},
    {"inspect", cmd_inspect, "show metadata and tensors of a GGUF, safetensors file or HF directory", help_inspect},
    {"quantize", cmd_quantize, "quantize a GGUF with a llama.cpp recipe (Q4_K_M, Q6_K, ...)", help_quantize},
    {"imatrix", cmd_imatrix, "importance matrix over a calibration text (llama-imatrix's GGUF format)", help_imatrix},
    {"tokenize", cmd_tokenize, "token ids of a text with a GGUF's tokenizer (llama-tokenize's role)", help_tokenize},
    {"run", cmd_run, "generate text from a GGUF model (streams tokens; --json for stats)", help_run},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server (completions, chat, streaming, /metrics)", help_serve},
    {"telemetry", cmd_telemetry, "opt-in telemetry: on, off, status, show (counters only, never prompts)", help_telemetry},
    {"chat", cmd_chat, "talk with a chat model: multi-turn, streaming, the model's chat template", help_chat},
    {"template", cmd_template, "the exact prompt a chat model receives for a conversation (MESSAGES.json)", help_template},
    {"perplexity", cmd_perplexity, "perplexity / KL-divergence of a GGUF model on a text (llama.cpp's method)", help_perplexity},
    {"keygen", cmd_keygen, "new Ed25519 signing key pair (KEY, KEY.pub)", help_keygen},
    {"trust", cmd_trust, "trust roots: init, rotate (N -> N+1), verify, show", help_trust},
    {"bundle", cmd_bundle, "pack a GGUF into a signed, versioned, expiring bundle", help_bundle},
    {"sign", cmd_sign, "add a signature to a bundle or trust root, in place", help_sign},
    {"verify", cmd_verify, "verify a bundle against a trust root (streaming, bounded memory)", help_verify},
    {"install", cmd_install, "A/B install store: install with health check, --status, --revert", help_install},
    {"push", cmd_push, "upload a bundle to an OCI registry (model artifact, signatures as referrer)", help_push},
    {"pull", cmd_pull, "download a bundle from an OCI registry, verified as it arrives, resumable", help_pull},
    {"update", cmd_update, "pull + verify + health-checked A/B install into a store", help_update},
    {"tuf", cmd_tuf, "TUF-compatible metadata: init a repository, add a target, fetch as a TUF client", help_tuf},
    {"intoto", cmd_intoto, "in-toto statement of a verified bundle's files (OpenSSF model-signing format)", help_intoto},
    {"bench", cmd_bench, "speed like llama-bench (-m MODEL), kernels vs roofline, synthetic models", help_bench},
    {"compare", cmd_compare, "quantize to each type: size, PPL, KLD, speed in one table + SVG", help_compare},
    {"sweep", cmd_sweep, "compare's grid on a cluster: plan, run, merge; Slurm arrays, k8s Indexed Jobs, Actions", help_sweep},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

const slm_cmd *cli_find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: slm [--version] [--help] <command> [<args>]\n\n"
                 "slmkit: Hugging Face checkpoint -> GGUF -> quantized, measured, signed bundle.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'slm help <command>' or 'slm <command> --help' shows a command's options.\n\n"
                 "Exit codes (every command):\n"
                 "  0  success\n"
                 "  1  the command ran and its answer is negative (e.g. a comparison failed)\n"
                 "  2  usage error (unknown command or option, missing argument)\n"
                 "  3  bad input (malformed, unsupported or inconsistent file)\n"
                 "  4  I/O error (cannot read, write, sync or rename; disk full)\n"
                 "  5  verification failed (signature, hash, expiry, rollback)\n"
                 "  6  internal error (out of memory, bug)\n");
}

/* Inputs are mmap'ed. If another process truncates a file while we read it,
 * the next access past its new end raises SIGBUS; no size check can rule that
 * out (check and access race), so every tool turns it into a clean I/O error
 * (one line, exit 4) instead of a core dump. Outputs are never partial: they
 * are temp files renamed only on success, and the temp file of a run stopped
 * this way is removed by the next run (slm_afile_clean_stale), as after kill -9. */
static void on_sigbus(int sig)
{
    static const char msg[] =
        "slm: error: an input file was truncated or changed while it was being read (SIGBUS)\n";
    (void)sig;
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(SLM_EIO);
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    if (argc < 2) {
        usage(stderr);
        return SLM_EUSAGE;
    }
    const char *a = argv[1];
    char kmsg[256];
    if (slm_kernel_env_check(kmsg, sizeof kmsg)) { /* SLM_KERNEL names a set this CPU cannot run */
        fprintf(stderr, "slm: error: %s\n", kmsg);
        return SLM_EUSAGE;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(a, "--version") || !strcmp(a, "version")) {
        printf("slm %s (commit %s)\n", SLM_VERSION, SLM_GIT_COMMIT);
        if (slm_kernel_active() == SLM_KERNEL_SVE)
            printf("kernels: sve (%d-bit vectors; cpu: %s)\n", slm_sve_bits(), slm_cpu_caps_text());
        else
            printf("kernels: %s (cpu: %s)\n", slm_kernel_name(slm_kernel_active()), slm_cpu_caps_text());
        return 0;
    }
    if (!strcmp(a, "help")) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        const slm_cmd *c = cli_find(argv[2]);
        if (!c)
            return cli_usage(NULL, "unknown command '%s'", argv[2]);
        cli_print_help(c, stdout);
        return 0;
    }
    const slm_cmd *c = cli_find(a);
    if (!c) {
        fprintf(stderr, "slm: usage error: unknown command '%s'\n", a);
        usage(stderr);
        return SLM_EUSAGE;
    }
    if (cli_wants_help(c, argc - 1, argv + 1))
        return 0;
    return c->fn(argc - 1, argv + 1);
}
