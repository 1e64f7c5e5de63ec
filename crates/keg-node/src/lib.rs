//! The node agent (kubelet): drives the pods bound to its nodes through their lifecycle.
