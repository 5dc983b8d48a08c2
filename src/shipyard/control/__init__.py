"""The control plane: desired state in the store, converged into running releases (no HTTP here)."""
