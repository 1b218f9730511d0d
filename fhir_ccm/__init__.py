"""fhir-ccm: a FHIR R4 server for chronic care management."""

__version__ = "0.1.0"
