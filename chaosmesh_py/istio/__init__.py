"""Pure knowledge of Istio's kinds: typed faults, Istio's validation rules, and the edits the
project makes to Istio resources (data in, data out: no I/O).
"""
