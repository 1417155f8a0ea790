"""The contract of tierstream: frozen, versioned payload models and their JSON Schemas.

Services import from here; nothing here imports a service.
"""
