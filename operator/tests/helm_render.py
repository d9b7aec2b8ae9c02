"""Renders and lints a Helm chart with Helm's own engine (the helm-python-sdk
package ships Helm's Go library) and prints the result as JSON:

    {"lint": {...}, "rendered": {template path: manifest}, "crds": [{name, data}]}

Used by operator/tests/chart.rs. Usage: python3 helm_render.py CHART_DIR VALUES_JSON
"""

import json
import sys

import helm_python as helm

chart_dir = sys.argv[1]
values = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
out = {"lint": helm.lint(chart_dir, values, strict=True, namespace="roster-system")}
chart = helm.Chart.load(chart_dir)
out["rendered"] = chart.render(values, name="roster-operator", namespace="roster-system", is_install=True)
out["crds"] = chart.crds
print(json.dumps(out))
