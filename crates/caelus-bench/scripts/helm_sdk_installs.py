"""The Helm SDK contender of `caelus-bench helm-sdk`: N `helm install`s of one chart
into N namespaces with the Helm SDK (libhelm_c: Helm v4's Go SDK and client-go, through
the helm-python-sdk wheel), CONCURRENCY at a time, each waiting with `wait=watcher`.

One Helm configuration per release, as `helm install -n NS` and Flux's helm-controller
both build one per release (release Secrets live in the release's namespace). Client
throttling is set to Flux helm-controller's defaults (--kube-api-qps 50,
--kube-api-burst 300) so that client-go's own limiter (5 QPS) does not decide the race.
ctypes releases the GIL around every libhelm_c call, so the threads run concurrently.

Usage: python helm_sdk_installs.py KUBECONFIG CHART_DIR N CONCURRENCY
Prints one JSON object: seconds, installed, failed (with the first errors), CPU and
peak RSS of this process (the Helm SDK runs in it).
"""

import concurrent.futures
import json
import resource
import sys
import time

import helm_python

KUBECONFIG, CHART_DIR, N, CONCURRENCY = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
QPS, BURST = 50, 300


def install(chart, i):
    ns = f"helm-{i:05d}"
    started = time.monotonic()
    with helm_python.Config(kubeconfig_path=KUBECONFIG, namespace=ns, qps=QPS, burst_limit=BURST) as cfg:
        rel = cfg.install(chart, "podinfo", None, namespace=ns, create_namespace=True,
                          wait="watcher", timeout=300)
    if rel.get("status") != "deployed":
        raise RuntimeError(f"{ns}: status {rel.get('status')}")
    return time.monotonic() - started


def main():
    chart = helm_python.Chart.load(CHART_DIR)
    failed, errors, durations = 0, [], []
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        for fut in concurrent.futures.as_completed([pool.submit(install, chart, i) for i in range(N)]):
            try:
                durations.append(fut.result())
            except Exception as e:  # a failed install is counted and reported, not fatal
                failed += 1
                if len(errors) < 3:
                    errors.append(str(e)[:300])
    seconds = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    durations.sort()
    print(json.dumps({
        "seconds": seconds,
        "installed": len(durations),
        "failed": failed,
        "errors": errors,
        "install_p50_secs": durations[len(durations) // 2] if durations else 0.0,
        "install_max_secs": durations[-1] if durations else 0.0,
        "cpu_secs": usage.ru_utime + usage.ru_stime,
        "max_rss_kib": usage.ru_maxrss,
    }))


if __name__ == "__main__":
    main()
