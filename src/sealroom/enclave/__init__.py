"""The mediator enclave: code that runs inside the TEE boundary."""
