#!/usr/bin/env python3
"""Independent power flow: Alliander's power-grid-model (asymmetric, Newton-Raphson) on the
feeder of one cable in a registry's feeders.csv, for the loads in LOADS (CSV: instant, node,
p_l1_w, p_l2_w, p_l3_w; positive draws, negative feeds back). Prints instant,node,l1_v,l2_v,
l3_v: the phase voltages at every node. The model is built from feeders.csv here, with the
cable types written out again below (they are data of the standard, not of vaten's code).
power-grid-model's lines are given by sequence impedances, its voltages phase to earth: with
the zero-sequence impedance Z0 equal to the positive-sequence Z1 (NEUTRAL = earthed) the
phases are uncoupled and the current returns at no cost, the neutral at earth everywhere; with
Z0 = 4 Z1 (NEUTRAL = conductor) a phase's self-impedance is (Z0 + 2 Z1) / 3 = 2 Z1 and the
mutual one (Z0 - Z1) / 3 = Z1, so a phase's drop over a segment is Z1 I_phase + Z1 (I_a + I_b +
I_c): that of a neutral conductor of the same Z1 earthed at the transformer only, measured
phase to that neutral.
Usage: check_power_grid_model.py FEEDERS_CSV CABLE LOADS_CSV SOURCE_V NEUTRAL"""
import csv
import math
import os
import sys
import time

import numpy as np
from power_grid_model import CalculationMethod, ComponentType, DatasetType, LoadGenType, PowerGridModel, initialize_array

# Ω/km of one conductor: pandapower's NAYY 4x150/120/50 SE, IEC 60228 for 95 mm².
TYPES = {"NAYY 4x150": (0.208, 0.080), "NAYY 4x120": (0.225, 0.080), "NAYY 4x95": (0.320, 0.082), "NAYY 4x50": (0.642, 0.083)}

feeders, cable, loads_path, source_v = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
zero_factor = {"earthed": 1.0, "conductor": 4.0}[sys.argv[5]]
segments = [r for r in csv.DictReader(open(feeders)) if r["cable_id"] == cable and r["kind"] == "segment"]
names = ["transformer"] + [r["node"] for r in segments]
ids = {n: i + 1 for i, n in enumerate(names)}
n_lines = len(segments)

node = initialize_array(DatasetType.input, ComponentType.node, len(names))
node["id"] = [ids[n] for n in names]
node["u_rated"] = 400.0

line = initialize_array(DatasetType.input, ComponentType.line, n_lines)
line["id"] = [1000 + i for i in range(n_lines)]
line["from_node"] = [ids[r["from_node"]] for r in segments]
line["to_node"] = [ids[r["node"]] for r in segments]
line["from_status"] = 1
line["to_status"] = 1
r = np.array([TYPES[s["cable_type"]][0] * float(s["length_m"]) / 1000 for s in segments])
x = np.array([TYPES[s["cable_type"]][1] * float(s["length_m"]) / 1000 for s in segments])
line["r1"], line["x1"], line["r0"], line["x0"] = r, x, zero_factor * r, zero_factor * x
line["c1"] = line["c0"] = line["tan1"] = line["tan0"] = 0.0
line["i_n"] = 1000.0

source = initialize_array(DatasetType.input, ComponentType.source, 1)
source["id"] = [5000]
source["node"] = [ids["transformer"]]
source["status"] = 1
source["u_ref"] = source_v / (400.0 / math.sqrt(3))
# The source's default short-circuit power (10 GVA, about 16 µΩ): the transformer's impedance
# is not part of the comparison.

rows = list(csv.DictReader(open(loads_path)))
instants = sorted({int(r["instant"]) for r in rows})
loaded = sorted({r["node"] for r in rows})
load = initialize_array(DatasetType.input, ComponentType.asym_load, len(loaded))
load["id"] = [6000 + i for i in range(len(loaded))]
load["node"] = [ids[n] for n in loaded]
load["status"] = 1
load["type"] = LoadGenType.const_power
load["p_specified"] = 0.0
load["q_specified"] = 0.0

model = PowerGridModel({ComponentType.node: node, ComponentType.line: line, ComponentType.source: source, ComponentType.asym_load: load})
out = csv.writer(sys.stdout)
out.writerow(["instant", "node", "l1_v", "l2_v", "l3_v"])
timed = 0.0
for t in instants:
    update = initialize_array(DatasetType.update, ComponentType.asym_load, len(loaded))
    update["id"] = load["id"]
    p = np.zeros((len(loaded), 3))
    for r in rows:
        if int(r["instant"]) == t:
            p[loaded.index(r["node"])] += [float(r["p_l1_w"]), float(r["p_l2_w"]), float(r["p_l3_w"])]
    update["p_specified"] = p
    update["q_specified"] = 0.0
    m = model.copy()
    m.update(update_data={ComponentType.asym_load: update})
    began = time.perf_counter()
    result = m.calculate_power_flow(symmetric=False, error_tolerance=1e-9, max_iterations=50, calculation_method=CalculationMethod.newton_raphson)
    timed += time.perf_counter() - began
    u = result[ComponentType.node]["u"]
    for name, i in ids.items():
        volts = u[list(node["id"]).index(i)]
        out.writerow([t, name] + [f"{v:.4f}" for v in volts])
if os.environ.get("VATEN_PGM_TIMING"):
    print(f"power-grid-model: {len(instants)} asymmetric power flows, {timed / len(instants) * 1e6:.0f} µs each", file=sys.stderr)
