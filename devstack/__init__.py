"""A local labelvault stack on one machine, and the real servers the test suites start.

``python -m devstack up`` (``make up``) starts a Prefect server with its UI, a process worker,
the webhook bridge and a real Label Studio with a sample project whose webhook points at the
bridge; ``python -m devstack down`` (``make down``) stops exactly what ``up`` started.

The server helpers (:mod:`devstack.process`, :mod:`devstack.labelstudio`,
:mod:`devstack.prefect`) are shared with the test suites' fixtures and the benchmarks; this
package is not part of the library and the library never imports it.
"""
