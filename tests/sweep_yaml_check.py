#!/usr/bin/env python3
"""tests/sweep_yaml_check.py KIND FILE N [K] -- parse a file `slm sweep submit` wrote as YAML
(PyYAML, Debian's python3-yaml) and check the fields its engine requires.
  k8s:    a batch/v1 Job, completionMode Indexed, completions N, parallelism K, a pod template with
          restartPolicy Never/OnFailure, containers (name, image, command) whose volumeMounts name
          the template's volumes (each a persistentVolumeClaim).
  github: a workflow with `on`, a matrix job whose strategy.matrix.task is 0..N-1 (max-parallel K),
          and a merge job that `needs` it; every job has runs-on and steps (uses or run).
Prints one line per problem and exits 1; exit 0 when the file holds everything."""
import sys

import yaml


def fail(msg):
    print(f"{sys.argv[2]}: {msg}")
    sys.exit(1)


def need(cond, msg):
    if not cond:
        fail(msg)


def check_k8s(doc, n, k):
    need(doc.get("apiVersion") == "batch/v1", "apiVersion is not batch/v1")
    need(doc.get("kind") == "Job", "kind is not Job")
    need(isinstance(doc.get("metadata", {}).get("name"), str), "no metadata.name")
    spec = doc.get("spec") or {}
    need(spec.get("completionMode") == "Indexed", "spec.completionMode is not Indexed")
    need(spec.get("completions") == n, f"spec.completions {spec.get('completions')} != {n}")
    need(spec.get("parallelism") == k, f"spec.parallelism {spec.get('parallelism')} != {k}")
    pod = (spec.get("template") or {}).get("spec") or {}
    need(pod.get("restartPolicy") in ("Never", "OnFailure"), "template restartPolicy must be Never or OnFailure")
    containers = pod.get("containers")
    need(isinstance(containers, list) and len(containers) == 1, "template.spec.containers: one container per index")
    vols = {v.get("name"): v for v in pod.get("volumes") or []}
    need(vols, "template.spec.volumes: no shared volume")
    for v in vols.values():
        need(isinstance((v.get("persistentVolumeClaim") or {}).get("claimName"), str),
             f"volume {v.get('name')}: no persistentVolumeClaim.claimName")
    for c in containers:
        need(isinstance(c.get("name"), str) and isinstance(c.get("image"), str), "container without name or image")
        cmd = c.get("command")
        need(isinstance(cmd, list) and cmd[1:3] == ["sweep", "run"], f"container command {cmd} is not slm sweep run")
        mounts = c.get("volumeMounts") or []
        need(mounts, "container without volumeMounts")
        for m in mounts:
            need(m.get("name") in vols, f"volumeMount {m.get('name')} names no volume")
            need(str(m.get("mountPath", "")).startswith("/"), "volumeMount without an absolute mountPath")


def check_github(doc, n, k):
    need("on" in doc, "no `on` (a bare on: would read as true in YAML 1.1 parsers)")
    jobs = doc.get("jobs") or {}
    matrix_jobs = [name for name, j in jobs.items() if ((j.get("strategy") or {}).get("matrix"))]
    need(len(matrix_jobs) == 1, "not exactly one matrix job")
    mj = jobs[matrix_jobs[0]]
    strat = mj["strategy"]
    need(strat["matrix"].get("task") == list(range(n)), f"strategy.matrix.task is not 0..{n - 1}")
    if k:
        need(strat.get("max-parallel") == k, f"strategy.max-parallel {strat.get('max-parallel')} != {k}")
    merge = [name for name, j in jobs.items() if matrix_jobs[0] in ([j.get("needs")] if isinstance(j.get("needs"), str)
                                                                    else (j.get("needs") or []))]
    need(len(merge) == 1, "no merge job with needs: on the matrix job")
    need(any("sweep merge" in str(s.get("run", "")) for s in jobs[merge[0]].get("steps") or []),
         "the merge job does not run slm sweep merge")
    for name, j in jobs.items():
        need(isinstance(j.get("runs-on"), str), f"job {name}: no runs-on")
        steps = j.get("steps")
        need(isinstance(steps, list) and steps, f"job {name}: no steps")
        for s in steps:
            need(("uses" in s) != ("run" in s), f"job {name}: a step needs exactly one of uses, run")
    for name in (matrix_jobs[0], merge[0]):
        need(any("sweep plan" in str(s.get("run", "")) for s in jobs[name]["steps"]), f"job {name} does not plan")
    need(any("sweep run" in str(s.get("run", "")) and "matrix.task" in str(s.get("run", ""))
             for s in mj.get("steps")), "the matrix job does not run slm sweep run --task ${{ matrix.task }}")


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("k8s", "github"):
        print(__doc__)
        sys.exit(2)
    with open(sys.argv[2], encoding="utf-8") as f:
        docs = list(yaml.safe_load_all(f))
    need(len(docs) == 1 and isinstance(docs[0], dict), "not one YAML mapping")
    n, k = int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0
    (check_k8s if sys.argv[1] == "k8s" else check_github)(docs[0], n, k)


main()
