#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The report of a benchmark run (tools/testing/bench/bench.sh).

  report.py DIR                  table on stdout; DIR/results.json,
                                 DIR/results.csv and DIR/results.png
  report.py --sharing DIR        a bench.sh --sharing run: only the
                                 sharing rows, no results.png
  report.py --validate RECORD    one lab measurement (a records.jsonl line)
  report.py --validate-engine F  nkbench's JSON
  report.py --validate-client F  one nkperf client's JSON

DIR holds engine.json (nkbench --json) and records.jsonl (one line per lab
measurement: test, path, rep, vms, nsm_vcpus (the NSM's vCPUs then; 1 when
absent, as in runs before it), wall_s, cpu_s and the JSON of every nkperf
client, in the order of the VMs).  Every figure is summarised by its median and its range
(min..max) over the repetitions; a ratio netkernel / baseline is computed
for each repetition from its two neighbouring measurements, then
summarised the same way.  The isolation tests ("limit_" and a lab test's
name) compare vm1 while vm2 sits at its engine limits (path
"vm2_at_limit") with vm1 alone (path "alone"): their ratio, reported
apart, is vm2_at_limit / alone.  Guests sharing one NSM (share_*,
flood_*) have a table of their own: the throughput ratio of two guests
against the ratio of their weights, and a request-response guest flooded
(path "flooded", or "busy": beside loops that only keep vCPUs busy)
against alone; beside_* has vm1's request-response and vm2's streams at
once, with the NSM's eventq_hipri off (path "default") and on ("evqhi"),
compared in a table of their own.  Guest to guest (g2g_*): vm1 against a
server in vm2, locally switched by the engine (path "netkernel"), the
baseline guest against a server in the second baseline guest over the
bridge (path "baseline"), and vm1 against the same server in vm2 with
local switching off for vm1, through the NSM (path "nsm": hostengine.rst
"Guests through their NSM"), the last with a table of its own: switched
/ through the NSM, for the same pair.  Bulk TCP (stream_*, mux_*, g2g_stream_*)
has a table of its own too: throughput beside host CPU per GB, both paths
and their ratios, medians.  Multiplexing through an NSM of 2 vCPUs
(mux_smp2_N) is compared with mux_N's NetKernel path in a last table
(paired by repetition; the two were not measured next to each other).
Absolute figures are reported, never judged:
validation asks only that every measurement ran, verified its data and
gave positive, finite numbers.
"""
import csv
import json
import math
import os
import re
import statistics
import subprocess
import sys

PATHS = ("netkernel", "baseline")
LIMIT_PATHS = ("vm2_at_limit", "alone")
G2G_PATHS = ("netkernel", "nsm")
SMP_SIDES = ("mux", "mux_smp")
MUX_SMP = re.compile(r"mux_smp(\d+)_(\d+)")

# Lab metrics: (name, unit, better, how to compute it from a record).
# better: +1 higher is better, -1 lower is better.


def _sum(rec, key):
    return sum(r[key] for r in rec["results"])


def _stream_bytes(rec):
    return _sum(rec, "bytes")


def _gbit_s(rec):
    return _sum(rec, "gbps")


def _cpu_per_gb(rec):
    return rec["cpu_s"] / (_stream_bytes(rec) / 1e9)


STREAM_METRICS = (
    ("throughput", "Gbit/s", +1, _gbit_s),
    ("host_cpu_per_gb", "CPU s/GB", -1, _cpu_per_gb),
)
# vm1's request-response, then vm2's bulk, in one record.
BESIDE_METRICS = (
    ("vm1 p50", "us", -1, lambda r: r["results"][0]["p50_us"]),
    ("vm1 p99", "us", -1, lambda r: r["results"][0]["p99_us"]),
    ("vm2 throughput", "Gbit/s", +1, lambda r: r["results"][1]["gbps"]),
)
RR_METRICS = (
    ("p50", "us", -1, lambda r: statistics.median(x["p50_us"] for x in r["results"])),
    ("p99", "us", -1, lambda r: statistics.median(x["p99_us"] for x in r["results"])),
    ("transactions", "1/s", +1, lambda r: _sum(r, "tps")),
)
METRICS = {
    "stream": STREAM_METRICS,
    "mux": STREAM_METRICS,
    "share": STREAM_METRICS,
    "flood": RR_METRICS,
    "beside": BESIDE_METRICS,
    "rr": RR_METRICS,
    "prr": RR_METRICS,
    "crr": (
        ("connections", "1/s", +1, lambda r: _sum(r, "conns_per_s")),
        ("p50", "us", -1, lambda r: statistics.median(x["p50_us"] for x in r["results"])),
    ),
}


def kind(test):
    parts = test.split("_")
    return parts[1] if parts[0] in ("limit", "g2g") else parts[0]


def isolation(test):
    return test.startswith("limit_")


def sane(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and \
        math.isfinite(v) and v > 0


def validate_client(r, what):
    if not isinstance(r, dict) or r.get("verified") is not True or r.get("errors") != 0:
        return ["%s: data not verified or errors: %s" % (what, json.dumps(r))]
    if kind(what) == "share" and not sane(r.get("gbps")):
        return ["%s: gbps = %s" % (what, r.get("gbps"))]
    return []


def validate_record(rec):
    problems = []
    what = "%s %s rep %s" % (rec.get("test"), rec.get("path"), rec.get("rep"))
    results = rec.get("results") or []
    if len(results) != rec.get("vms"):
        problems.append("%s: %d results from %s VMs" % (what, len(results), rec.get("vms")))
    for r in results:
        problems += validate_client(r, what)
    if not sane(rec.get("cpu_s")) or not sane(rec.get("wall_s")):
        problems.append("%s: cpu_s %s wall_s %s" % (what, rec.get("cpu_s"), rec.get("wall_s")))
    if not problems:
        for name, _, _, fn in METRICS[kind(rec["test"])]:
            try:
                v = fn(rec)
            except (KeyError, TypeError, ZeroDivisionError) as e:
                v = "missing %s" % e
            if not sane(v):
                problems.append("%s: %s = %s" % (what, name, v))
    return problems


def validate_engine(eng):
    problems = []
    if eng.get("verified") is not True:
        problems.append("nkbench: data not verified")
    phases = eng.get("phases") or []
    if not phases:
        problems.append("nkbench: no phases")
    for p in phases:
        for side in ("engine", "baseline"):
            vals = p.get(side) or []
            if not vals or not all(sane(v) for v in vals):
                problems.append("nkbench %s %s: %s" % (p.get("name"), side, vals))
    return problems


def summary(vals):
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "values": vals}


def lab_results(records, sides=PATHS):
    """[{test, metric, unit, better, vms, sides[0], sides[1], ratio}]: the
    records of the tests compared between paths @sides, the ratio
    sides[0] / sides[1]"""
    by = {}
    for rec in records:
        if isolation(rec["test"]) == (sides == LIMIT_PATHS):
            by.setdefault(rec["test"], {}).setdefault(rec["path"], {})[rec["rep"]] = rec
    out = []
    for test, paths in by.items():
        reps = sorted(set(paths.get(sides[0], ())) & set(paths.get(sides[1], ())))
        if not reps:
            continue
        for name, unit, better, fn in METRICS[kind(test)]:
            row = {"test": test, "metric": name, "unit": unit, "better": better,
                   "vms": next(iter(paths[sides[0]].values()))["vms"]}
            for p in sides:
                row[p] = summary([fn(paths[p][k]) for k in sorted(paths[p])])
            row["ratio"] = summary([fn(paths[sides[0]][k]) / fn(paths[sides[1]][k])
                                    for k in reps])
            out.append(row)
    return out


def nsm_smp_results(records):
    """Rows comparing mux_smpK_N's NetKernel path (side "mux_smp", an NSM of
    K vCPUs) with mux_N's (side "mux"), rep k with rep k: the ratio
    mux_smp / mux, and the NSM's vCPUs on each side ("nsm_vcpus")."""
    by = {}
    for rec in records:
        if rec["path"] == "netkernel" and kind(rec["test"]) == "mux":
            by.setdefault(rec["test"], {})[rec["rep"]] = rec
    out = []
    for test, more in by.items():
        m = MUX_SMP.fullmatch(test)
        one = by.get("mux_" + m.group(2), {}) if m else {}
        reps = sorted(set(more) & set(one))
        if not reps:
            continue
        sides = dict(zip(SMP_SIDES, (one, more)))
        for name, unit, better, fn in STREAM_METRICS:
            row = {"test": test, "metric": name, "unit": unit, "better": better,
                   "vms": more[reps[0]]["vms"],
                   "nsm_vcpus": {s: sorted({r.get("nsm_vcpus", 1) for r in recs.values()})
                                 for s, recs in sides.items()}}
            for s, recs in sides.items():
                row[s] = summary([fn(recs[k]) for k in sorted(recs)])
            row["ratio"] = summary([fn(more[k]) / fn(one[k]) for k in reps])
            out.append(row)
    return out


def bulk_rows(lab):
    """The bulk TCP rows of lab_results(), throughput and host CPU per GB
    of one test side by side: [(test, vms, throughput row, CPU row)]."""
    by = {}
    for r in lab:
        if kind(r["test"]) in ("stream", "mux"):
            by.setdefault(r["test"], {})[r["metric"]] = r
    return [(t, m["throughput"]["vms"], m["throughput"], m["host_cpu_per_gb"])
            for t, m in by.items() if len(m) == 2]


def sharing_results(records):
    """Rows of the sharing tables: share_NAME_wW (vm1 weight 1, vm2 weight
    W), flood_TEST (paths alone and flooded, or alone and busy) and
    beside_TEST (paths default and evqhi)."""
    by = {}
    for rec in records:
        if kind(rec["test"]) in ("share", "flood", "beside"):
            by.setdefault(rec["test"], {}).setdefault(rec["path"], {})[rec["rep"]] = rec
    out = []
    for test, paths in by.items():
        if kind(test) == "share":
            recs = [paths["netkernel"][k] for k in sorted(paths.get("netkernel", {}))]
            weight = float(test.rsplit("_w", 1)[1])
            gbps = [[r["gbps"] for r in rec["results"]] for rec in recs]
            out.append({"test": test, "metric": "throughput", "unit": "Gbit/s",
                        "first": summary([g[0] for g in gbps]),
                        "second": summary([g[1] for g in gbps]),
                        "ratio": summary([g[1] / g[0] / weight for g in gbps])})
            continue
        if kind(test) == "beside":
            reps = sorted(set(paths.get("default", ())) & set(paths.get("evqhi", ())))
            for name, unit, _, fn in BESIDE_METRICS if reps else ():
                off = [fn(paths["default"][k]) for k in reps]
                on = [fn(paths["evqhi"][k]) for k in reps]
                out.append({"test": test, "metric": name, "unit": unit,
                            "first": summary(off), "second": summary(on),
                            "ratio": summary([b / a for a, b in zip(off, on)])})
            continue
        loaded = paths.get("flooded", paths.get("busy", {}))
        reps = sorted(set(paths.get("alone", ())) & set(loaded))
        if not reps:
            continue
        for name, unit, _, fn in RR_METRICS[:2]:
            out.append({"test": test, "metric": name, "unit": unit,
                        "first": summary([fn(paths["alone"][k]) for k in reps]),
                        "second": summary([fn(loaded[k]) for k in reps]),
                        "ratio": summary([fn(loaded[k]) / fn(paths["alone"][k])
                                          for k in reps])})
    return out


def engine_results(eng):
    out = []
    for p in eng["phases"]:
        ratios = [e / b for e, b in zip(p["engine"], p["baseline"])]
        out.append({"test": p["name"], "metric": p.get("metric", p["name"]),
                    "unit": p["unit"], "baseline_name": p.get("baseline_name", "baseline"),
                    "engine": summary(p["engine"]), "baseline": summary(p["baseline"]),
                    "ratio": summary(ratios)})
    return out


def fmt(s):
    def num(v):
        return "%.4g" % v
    return "%s [%s..%s]" % (num(s["median"]), num(s["min"]), num(s["max"]))


def table(engine, lab, iso=(), sharing=(), g2g=(), smp=()):
    lines = []
    tw = max([12] + [len(r["test"]) for r in list(lab) + list(iso) + list(sharing)])
    w = "%%-%ds %%-22s %%-9s %%-32s %%-40s %%s" % tw
    if engine:
        lines.append("host engine alone (median [min..max])")
        lines.append(w % ("phase", "metric", "unit", "engine", "machine limit", "engine / limit"))
        for r in engine:
            lines.append(w % (r["test"], r["metric"], r["unit"], fmt(r["engine"]),
                              fmt(r["baseline"]) + " " + r["baseline_name"], fmt(r["ratio"])))
        lines.append("")

    def section(title, head, rows, a, b, w=w):
        """A table of rows comparing sides a and b, their ratio last."""
        if not rows:
            return
        if lines and lines[-1]:
            lines.append("")
        lines.append(title)
        lines.append(w % (("test", "metric", "unit") + head))
        for r in rows:
            lines.append(w % (r["test"], r["metric"], r["unit"], fmt(r[a]), fmt(r[b]),
                              fmt(r["ratio"])))

    section("end to end (median [min..max]; ratio from neighbouring runs)",
            ("netkernel", "baseline", "netkernel / baseline"), lab, "netkernel", "baseline")
    bulk = bulk_rows(lab)
    if bulk:
        wb = "%-14s %6s   %9s %9s %7s   %9s %9s %7s"
        lines.append("")
        lines.append("bulk TCP: throughput beside host CPU per GB (medians; ratios netkernel "
                     "/ baseline)")
        lines.append((wb % ("", "", "Gbit/s", "", "", "CPU s/GB", "", "")).rstrip())
        lines.append(wb % ("test", "guests", "netkernel", "baseline", "ratio",
                           "netkernel", "baseline", "ratio"))
        for test, vms, t, c in bulk:
            lines.append(wb % ((test, vms) + tuple(
                "%.4g" % r[s]["median"] for r in (t, c) for s in PATHS + ("ratio",))))
    section("isolation: vm1 with vm2 at its limit / alone (median [min..max])",
            ("vm2 at limit", "alone", "at limit / alone"), iso, "vm2_at_limit", "alone",
            w="%-18s" + w[len("%-12s"):])
    section("guest to guest: vm1 -> vm2 locally switched / through the NSM",
            ("switched", "through the NSM", "switched / NSM"), g2g, "netkernel", "nsm")
    section("guests sharing one NSM, vm1 weight 1, vm2 weight W (share_*_wW)",
            ("vm1", "vm2", "vm2 / vm1 / W (1 = shared by weight)"),
            [r for r in sharing if kind(r["test"]) == "share"], "first", "second")
    section("vm1's request-response alone and while vm2 floods the NSM "
            "(flood_rr_64_busy: while vm2 and the NSM only keep their vCPUs busy)",
            ("alone", "flooded", "flooded / alone"),
            [r for r in sharing if kind(r["test"]) == "flood"], "first", "second")
    section("vm1's request-response and vm2's streams at once, the NSM's eventq_hipri "
            "off and on",
            ("eventq_hipri=0", "eventq_hipri=1", "on / off"),
            [r for r in sharing if kind(r["test"]) == "beside"], "first", "second")
    if smp:
        vcpus = smp[0]["nsm_vcpus"]
        section("multiplexing, NetKernel path: NSM of %s vCPUs (mux_smp*_N) / of %s (mux_N), "
                "paired by repetition" % ("/".join(map(str, vcpus["mux_smp"])),
                                          "/".join(map(str, vcpus["mux"]))),
                ("mux_N", "mux_smp*_N", "mux_smp / mux"), smp, "mux", "mux_smp")
    return "\n".join(lines)


def write_csv(path, engine, lab, iso, sharing, g2g, smp):
    with open(path, "w", newline="") as f:
        cw = csv.writer(f)
        cw.writerow(["section", "test", "metric", "unit", "side", "median", "min", "max",
                     "values"])
        for sec, rows, sides in (("engine", engine, ("engine", "baseline", "ratio")),
                                 ("lab", lab, PATHS + ("ratio",)),
                                 ("isolation", iso, LIMIT_PATHS + ("ratio",)),
                                 ("g2g", g2g, G2G_PATHS + ("ratio",)),
                                 ("nsm_smp", smp, SMP_SIDES + ("ratio",)),
                                 ("sharing", sharing, ("first", "second", "ratio"))):
            for r in rows:
                for s in sides:
                    v = r[s]
                    cw.writerow([sec, r["test"], r["metric"], r["unit"], s, v["median"],
                                 v["min"], v["max"], " ".join("%g" % x for x in v["values"])])


GNUPLOT = r"""
set terminal pngcairo size 1600,1100 font "sans,10"
set output '{out}/results.png'
set termoption noenhanced
set multiplot layout 2,2 title "NetKernel benchmarks ({title})"
set style fill solid 0.6 border -1
set boxwidth 0.35
set grid ytics
set key top left
set xtics rotate by -30
set yrange [0:*]
set title "Bulk TCP throughput (median, min..max)"
set ylabel "Gbit/s"
plot '{out}/plot-tput.dat' using ($0-0.18):2:xtic(1) with boxes title "netkernel", \
     '' using ($0-0.18):2:3:4 with yerrorbars lc black pt 0 notitle, \
     '' using ($0+0.18):5 with boxes title "baseline", \
     '' using ($0+0.18):5:6:7 with yerrorbars lc black pt 0 notitle
set title "netkernel / baseline, every figure (median, min..max); 1 = equal"
set ylabel "ratio"
set xtics font ",8"
set yrange [0:*]
plot '{out}/plot-ratio.dat' using 0:2:xtic(1) with boxes lc rgb "#4477aa" notitle, \
     '' using 0:2:3:4 with yerrorbars lc black pt 0 notitle, \
     1 with lines lc rgb "red" dt 2 notitle
set title "Multiplexing: guests streaming at once"
set xtics norotate 1 font ",10"
set xlabel "guests"
set ylabel "aggregate Gbit/s"
set y2label "host CPU s per GB"
set y2tics
set y2range [0:*]
set datafile missing "-"
plot '{out}/plot-mux.dat' using 1:2 with linespoints lw 2 title "netkernel Gbit/s", \
     '' using 1:3 with linespoints lw 2 title "baseline Gbit/s", \
     '' using 1:6 with linespoints lw 2 title "netkernel, NSM of 2 vCPUs, Gbit/s", \
     '' using 1:4 axes x1y2 with linespoints dt 2 title "netkernel CPU s/GB", \
     '' using 1:5 axes x1y2 with linespoints dt 2 title "baseline CPU s/GB", \
     '' using 1:7 axes x1y2 with linespoints dt 2 title "netkernel, NSM of 2 vCPUs, CPU s/GB"
unset y2tics
unset y2label
unset xlabel
set xtics rotate by -30
set title "Host engine alone: engine / machine limit measured in the same run"
set ylabel "ratio"
plot '{out}/plot-engine.dat' using 0:2:xtic(1) with boxes lc rgb "#228833" notitle, \
     '' using 0:2:3:4 with yerrorbars lc black pt 0 notitle, \
     1 with lines lc rgb "red" dt 2 notitle
unset multiplot
"""


def plot(out, engine, lab, title):
    def med(s):
        return "%g %g %g" % (s["median"], s["min"], s["max"])
    with open(os.path.join(out, "plot-tput.dat"), "w") as f:
        for r in lab:
            if kind(r["test"]) == "stream" and r["metric"] == "throughput":
                f.write("%s %s %s\n" % (r["test"], med(r["netkernel"]), med(r["baseline"])))
    with open(os.path.join(out, "plot-ratio.dat"), "w") as f:
        for r in lab:
            f.write("%s:%s %s\n" % (r["test"], r["metric"], med(r["ratio"])))
    with open(os.path.join(out, "plot-mux.dat"), "w") as f:
        mux = {}
        for r in lab:
            if kind(r["test"]) == "mux":
                side = "mux_smp" if MUX_SMP.fullmatch(r["test"]) else "mux"
                mux.setdefault(r["vms"], {})[side, r["metric"]] = r
        for n in sorted(mux):
            def cell(side, metric, path):
                return str(mux[n].get((side, metric), {}).get(path, {}).get("median", "-"))
            # guests; mux_N's Gbit/s, netkernel and baseline, and CPU s/GB;
            # mux_smp*_N's netkernel Gbit/s and CPU s/GB ("-": none)
            f.write(" ".join([str(n)] + [cell(side, metric, p) for side, metric, p in (
                ("mux", "throughput", "netkernel"), ("mux", "throughput", "baseline"),
                ("mux", "host_cpu_per_gb", "netkernel"), ("mux", "host_cpu_per_gb", "baseline"),
                ("mux_smp", "throughput", "netkernel"),
                ("mux_smp", "host_cpu_per_gb", "netkernel"))]) + "\n")
    with open(os.path.join(out, "plot-engine.dat"), "w") as f:
        for r in engine:
            f.write("%s %s\n" % (r["test"], med(r["ratio"])))
    gp = os.path.join(out, "results.gp")
    with open(gp, "w") as f:
        f.write(GNUPLOT.format(out=out, title=title))
    subprocess.run(["gnuplot", gp], check=True)


def load(path):
    with open(path) as f:
        return json.load(f)


def main(argv):
    checks = {"--validate": validate_record, "--validate-engine": validate_engine,
              "--validate-client": lambda r: validate_client(r, argv[2])}
    if len(argv) == 3 and argv[1] in checks:
        try:
            data = load(argv[2])
            problems = checks[argv[1]](data)
        except (OSError, ValueError, KeyError, TypeError) as e:
            problems = ["%s: %s" % (argv[2], e)]
        for p in problems:
            print("invalid:", p)
        return 1 if problems else 0
    sharing_only = len(argv) == 3 and argv[1] == "--sharing"
    if sharing_only:
        argv = argv[:1] + argv[2:]
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[1]
    problems = []
    engine = []
    if os.path.exists(os.path.join(out, "engine.json")):
        eng = load(os.path.join(out, "engine.json"))
        problems += validate_engine(eng)
        engine = engine_results(eng) if not problems else []
    with open(os.path.join(out, "records.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    for rec in records:
        problems += validate_record(rec)
    for p in problems:
        print("invalid:", p)
    records = [r for r in records if not validate_record(r)]
    lab = lab_results(records)
    iso = lab_results(records, LIMIT_PATHS)
    sharing = sharing_results(records)
    g2g = lab_results(records, G2G_PATHS)
    smp = nsm_smp_results(records)
    print(table(engine, lab, iso, sharing, g2g, smp))
    title = os.path.basename(os.path.normpath(out))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"run": title, "engine": engine, "lab": lab, "isolation": iso,
                   "sharing": sharing, "g2g": g2g, "nsm_smp": smp,
                   "machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())}},
                  f, indent=1)
    write_csv(os.path.join(out, "results.csv"), engine, lab, iso, sharing, g2g, smp)
    if sharing_only:
        return 1 if problems or not sharing else 0
    plot(out, engine, lab, title)
    return 1 if problems or not lab or not engine else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
