"""`peftbench plan`: each method's parameters, memory, time and size predicted before anything trains.

One job per module: `meta_model` builds the model and its adapter on the meta device and counts parameters;
`trace` runs training steps under FakeTensorMode (no memory allocated) for the peak of live tensors and the
FLOPs; `memory` turns a trace into the predicted split and the CPU/CUDA figure a trial measures; `timing`
predicts seconds from FLOPs and this machine's calibrated throughput; `assemble` puts one plan together.
"""
