/* tools/main.c — `slm`: one binary, git-style subcommands behind one table. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "pipeline.h"
#include "version.h"

#define SLM_VERSION "0.1.0"

/* each tools/NAME.c: cmd_NAME and doc_NAME (usage, text, option table) */
#define SLM_COMMAND(n) int cmd_##n(int argc, char **argv); extern const slm_cmd_doc doc_##n;
SLM_COMMAND(convert)
SLM_COMMAND(inspect)
SLM_COMMAND(quantize)
SLM_COMMAND(imatrix)
SLM_COMMAND(tokenize)
SLM_COMMAND(run)
SLM_COMMAND(serve)
SLM_COMMAND(telemetry)
SLM_COMMAND(chat)
SLM_COMMAND(template)
SLM_COMMAND(perplexity)
SLM_COMMAND(keygen)
SLM_COMMAND(trust)
SLM_COMMAND(bundle)
SLM_COMMAND(sign)
SLM_COMMAND(verify)
SLM_COMMAND(install)
SLM_COMMAND(push)
SLM_COMMAND(pull)
SLM_COMMAND(update)
SLM_COMMAND(tuf)
SLM_COMMAND(intoto)
SLM_COMMAND(bench)
SLM_COMMAND(compare)
SLM_COMMAND(sweep)
int cmd_completion(int argc, char **argv);
extern const slm_cmd_doc doc_completion;

static const slm_cmd commands[] = {
    {"convert", cmd_convert, "convert a Hugging Face checkpoint (safetensors) to GGUF", &doc_convert},
    {"inspect", cmd_inspect, "show metadata and tensors of a GGUF, safetensors file or HF directory", &doc_inspect},
    {"quantize", cmd_quantize, "quantize a GGUF with a llama.cpp recipe (Q4_K_M, Q6_K, ...)", &doc_quantize},
    {"imatrix", cmd_imatrix, "importance matrix over a calibration text (llama-imatrix's GGUF format)", &doc_imatrix},
    {"tokenize", cmd_tokenize, "token ids of a text with a GGUF's tokenizer (llama-tokenize's role)", &doc_tokenize},
    {"run", cmd_run, "generate text from a GGUF model (streams tokens; --json for stats)", &doc_run},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server (completions, chat, streaming, /metrics)", &doc_serve},
    {"telemetry", cmd_telemetry, "opt-in telemetry: on, off, status, show (counters only, never prompts)", &doc_telemetry},
    {"chat", cmd_chat, "talk with a chat model: multi-turn, streaming, the model's chat template", &doc_chat},
    {"template", cmd_template, "the exact prompt a chat model receives for a conversation (MESSAGES.json)", &doc_template},
    {"perplexity", cmd_perplexity, "perplexity / KL-divergence of a GGUF model on a text (llama.cpp's method)", &doc_perplexity},
    {"keygen", cmd_keygen, "new Ed25519 signing key pair (KEY, KEY.pub)", &doc_keygen},
    {"trust", cmd_trust, "trust roots: init, rotate (N -> N+1), verify, show", &doc_trust},
    {"bundle", cmd_bundle, "pack a GGUF into a signed, versioned, expiring bundle", &doc_bundle},
    {"sign", cmd_sign, "add a signature to a bundle or trust root, in place", &doc_sign},
    {"verify", cmd_verify, "verify a bundle against a trust root (streaming, bounded memory)", &doc_verify},
    {"install", cmd_install, "A/B install store: install with health check, --status, --revert", &doc_install},
    {"push", cmd_push, "upload a bundle to an OCI registry (model artifact, signatures as referrer)", &doc_push},
    {"pull", cmd_pull, "download a bundle from an OCI registry, verified as it arrives, resumable", &doc_pull},
    {"update", cmd_update, "pull + verify + health-checked A/B install into a store", &doc_update},
    {"tuf", cmd_tuf, "TUF-compatible metadata: init a repository, add a target, fetch as a TUF client", &doc_tuf},
    {"intoto", cmd_intoto, "in-toto statement of a verified bundle's files (OpenSSF model-signing format)", &doc_intoto},
    {"bench", cmd_bench, "speed like llama-bench (-m MODEL), kernels vs roofline, synthetic models", &doc_bench},
    {"compare", cmd_compare, "quantize to each type: size, PPL, KLD, speed in one table + SVG", &doc_compare},
    {"sweep", cmd_sweep, "compare's grid on a cluster: plan, run, merge; Slurm arrays, k8s Indexed Jobs, Actions", &doc_sweep},
    {"completion", cmd_completion, "bash or zsh completion script for slm, from the option tables", &doc_completion},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char *const completion_shells[] = {"bash", "zsh", NULL};
const slm_cmd_doc doc_completion = {
    .usage = "slm completion bash|zsh",
    .description = "Print a completion script for bash or zsh on stdout, generated from the same option\n"
                   "tables that drive each command's parser and --help: every command, its options and,\n"
                   "where an option takes a file, a directory or one of a set of words, those.\n"
                   "  bash: source <(slm completion bash), or save it as\n"
                   "        /usr/share/bash-completion/completions/slm\n"
                   "  zsh:  slm completion zsh > \"${fpath[1]}/_slm\"\n",
    .opts = (const slm_opt[]){OPT_END()},
    .exit_codes = "0 ok, 2 usage (no or an unknown shell)",
    .examples = "source <(slm completion bash)",
    .subcommands = completion_shells,
};

int cmd_completion(int argc, char **argv)
{
    int ai = slm_opt_parse("completion", doc_completion.opts, argc, argv, NULL);
    if (ai < 0)
        return -ai;
    if (argc - ai != 1)
        return cli_usage("completion", "expected one shell: bash or zsh");
    if (slm_opt_completion(stdout, commands, N_COMMANDS, argv[ai]))
        return cli_usage("completion", "unknown shell '%s' (bash, zsh)", argv[ai]);
    return fflush(stdout) ? cli_fail("completion", SLM_EIO, "cannot write the script") : 0;
}

/* Hidden: `slm help --man` writes slm(1), `slm help --man CMD` writes slm-CMD(1) (make man). */
static int man_page(const char *cmd)
{
    if (cmd && !cli_find(cmd))
        return cli_usage(NULL, "unknown command '%s'", cmd);
    slm_opt_man(stdout, commands, N_COMMANDS, cmd, SLM_VERSION);
    return fflush(stdout) ? cli_fail(NULL, SLM_EIO, "cannot write the page") : 0;
}

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
    if (slm_pl_kernel_env_check(kmsg, sizeof kmsg)) { /* SLM_KERNEL names a set this CPU cannot run */
        fprintf(stderr, "slm: error: %s\n", kmsg);
        return SLM_EUSAGE;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(a, "--version") || !strcmp(a, "version")) {
        printf("slm %s (commit %s)\n", SLM_VERSION, SLM_GIT_COMMIT);
        char kernels[512];
        slm_pl_kernels_text(kernels, sizeof kernels);
        printf("kernels: %s\n", kernels);
        return 0;
    }
    if (!strcmp(a, "help")) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[2], "--man"))
            return man_page(argc > 3 ? argv[3] : NULL);
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
