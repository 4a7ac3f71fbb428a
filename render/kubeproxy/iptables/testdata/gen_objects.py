#!/usr/bin/env python3
"""One-off converter, kept for provenance: turns the compact inputs of
kube-proxy-cases/caseNN.README.yaml (extracted from kubernetes/kubernetes
pkg/proxy/iptables/proxier_test.go @ 531be81208e2274ef42e72525a26610a9622bcdf)
into standard Kubernetes objects (v1 Service, discovery.k8s.io/v1 EndpointSlice)
that the tests load with cluster.LoadObjects.

usage: gen_objects.py CASES_DIR OUT_DIR
"""
import sys, os, glob, yaml

def q(s):
    return yaml.safe_dump(s, default_flow_style=True).strip().removesuffix('\n...').strip()

def service(s):
    out = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"namespace": s["ns"], "name": s["name"]},
           "spec": {"type": s.get("type", "ClusterIP"), "clusterIP": s["clusterIP"]}}
    spec = out["spec"]
    ports = []
    for p in s["ports"]:
        pp = {"name": p["name"], "port": p["port"], "protocol": p["protocol"]}
        if p.get("nodePort"):
            pp["nodePort"] = p["nodePort"]
        ports.append(pp)
    spec["ports"] = ports
    if s.get("externalIPs"):
        spec["externalIPs"] = s["externalIPs"]
    if s.get("etp"):
        spec["externalTrafficPolicy"] = s["etp"]
    if s.get("itp"):
        spec["internalTrafficPolicy"] = s["itp"]
    if s.get("hcnp"):
        spec["healthCheckNodePort"] = s["hcnp"]
    if s.get("sourceRanges"):
        spec["loadBalancerSourceRanges"] = s["sourceRanges"]
    if s.get("affinity"):
        spec["sessionAffinity"] = s["affinity"]
        if s.get("timeout"):
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": s["timeout"]}}
    if s.get("lbIPs"):
        ing = []
        for ip, mode in s["lbIPs"]:
            e = {"ip": ip}
            if mode:
                e["ipMode"] = mode
            ing.append(e)
        out["status"] = {"loadBalancer": {"ingress": ing}}
    return out

def slice_(e):
    v6 = any(":" in ep["addr"] for ep in e["endpoints"])
    out = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"namespace": e["ns"], "name": e["svc"] + "-" + e["name"],
                        "labels": {"kubernetes.io/service-name": e["svc"]}},
           "addressType": "IPv6" if v6 else "IPv4",
           "ports": [{"name": p["name"], "port": p["port"], "protocol": p["protocol"]} for p in e["ports"]],
           "endpoints": []}
    for ep in e["endpoints"]:
        o = {"addresses": [ep["addr"]]}
        cond = {}
        for k in ("ready", "serving", "terminating"):
            if ep.get(k) is not None:
                cond[k] = ep[k]
        if cond:
            o["conditions"] = cond
        if ep.get("node"):
            o["nodeName"] = ep["node"]
        out["endpoints"].append(o)
    return out

def dump(path, header, objs):
    with open(path, "w") as f:
        f.write(header)
        for o in objs:
            f.write("---\n")
            f.write(yaml.safe_dump(o, sort_keys=False, default_flow_style=False))

def main(src, dst):
    for readme in sorted(glob.glob(os.path.join(src, "case*.README.yaml"))):
        d = yaml.safe_load(open(readme))
        for sc in d.get("subcases") or []:
            name = sc["id"]
            if name.startswith("case12"):
                name = "case12"  # the four proxier variants share the same objects
            header = "# Inputs of %s (%s), converted by gen_objects.py from kube-proxy-cases/%s\n# (source: %s).\n" % (
                sc["id"], sc.get("upstream_test", ""), os.path.basename(readme), d.get("source", ""))
            objs = [service(s) for s in sc.get("services", [])] + [slice_(e) for e in sc.get("endpointSlices", [])]
            dump(os.path.join(dst, name + ".objects.yaml"), header, objs)

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
