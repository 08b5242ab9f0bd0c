"""The local mesh: an Istio-compatible control plane on a real Envoy, on one machine.

The Kubernetes API double serves the Istio resources; a translator does istiod's job and turns
them into Envoy configuration; one Envoy process carries every workload's sidecar (one outbound
listener each) and the ingress gateway; Bookinfo's services run behind it. The same experiment
file runs here or against a cluster: only the kubeconfig context differs.
"""
