"""What every capability relies on, whatever it edits: runs and their ids, the durable ledger,
effect verification, rollback / halt / reap, signals, guardrails, secret redaction, and the
error boundary of Chaos Toolkit activities. The engine never imports a capability.
"""
