"""minikubelet: a single-node kubelet for machines with no Kubernetes control plane."""

__version__ = "0.1.0"
