"""Realistic request bodies shared by the benchmark suites."""

from __future__ import annotations

import json
from typing import Any

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"


def patient(index: int = 0) -> dict[str, Any]:
    """A ~3 KB Patient of the kind a chronic care programme holds: identifiers, names, contacts, extensions."""
    mrn = f"MRN{100000 + index:07d}"
    return {
        "resourceType": "Patient",
        "meta": {
            "profile": [f"{US_CORE}/us-core-patient"],
            "tag": [{"system": "http://example.org/fhir/tags", "code": "ccm-enrolled", "display": "CCM enrolled"}],
        },
        "extension": [
            {
                "url": f"{US_CORE}/us-core-race",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2106-3",
                            "display": "White",
                        },
                    },
                    {"url": "text", "valueString": "White"},
                ],
            },
            {
                "url": f"{US_CORE}/us-core-ethnicity",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2186-5",
                            "display": "Not Hispanic or Latino",
                        },
                    },
                    {"url": "text", "valueString": "Not Hispanic or Latino"},
                ],
            },
            {"url": f"{US_CORE}/us-core-birthsex", "valueCode": "F"},
        ],
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                            "display": "Medical Record Number",
                        }
                    ],
                    "text": "Medical Record Number",
                },
                "system": "http://hospital.example.org/mrn",
                "value": mrn,
                "period": {"start": "2015-03-01"},
                "assigner": {"display": "Example General Hospital"},
            },
            {
                "use": "official",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "SS",
                            "display": "Social Security number",
                        }
                    ],
                },
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": f"999-{index % 100:02d}-{index % 10000:04d}",
            },
        ],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": "Whitaker",
                "given": ["Eleanor", "Margaret"],
                "prefix": ["Mrs."],
                "period": {"start": "1978-06-10"},
            },
            {"use": "maiden", "family": "Holloway", "given": ["Eleanor", "Margaret"]},
            {"use": "nickname", "given": ["Nell"]},
        ],
        "telecom": [
            {"system": "phone", "value": "+1 555 0100 123", "use": "home", "rank": 2},
            {"system": "phone", "value": "+1 555 0199 456", "use": "mobile", "rank": 1},
            {"system": "email", "value": f"eleanor.whitaker.{index}@example.org", "use": "home"},
        ],
        "gender": "female",
        "birthDate": "1952-09-14",
        "deceasedBoolean": False,
        "address": [
            {
                "use": "home",
                "type": "both",
                "text": "1284 Maple Hollow Road, Apt 3B, Springfield, IL 62704",
                "line": ["1284 Maple Hollow Road", "Apt 3B"],
                "city": "Springfield",
                "district": "Sangamon",
                "state": "IL",
                "postalCode": "62704",
                "country": "US",
                "period": {"start": "2009-11-01"},
            }
        ],
        "maritalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": "W",
                    "display": "Widowed",
                }
            ],
            "text": "Widowed",
        },
        "multipleBirthBoolean": False,
        "contact": [
            {
                "relationship": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                                "code": "N",
                                "display": "Next-of-Kin",
                            }
                        ]
                    }
                ],
                "name": {"use": "official", "family": "Whitaker", "given": ["Daniel"]},
                "telecom": [{"system": "phone", "value": "+1 555 0142 789", "use": "mobile"}],
                "gender": "male",
            }
        ],
        "communication": [
            {
                "language": {
                    "coding": [{"system": "urn:ietf:bcp:47", "code": "en-US", "display": "English (United States)"}],
                    "text": "English",
                },
                "preferred": True,
            }
        ],
        "generalPractitioner": [{"display": "Dr. Samuel Okafor"}],
        "managingOrganization": {"display": "Example General Hospital"},
    }


def patient_body(index: int = 0) -> bytes:
    """``patient(index)`` as compact JSON bytes."""
    return json.dumps(patient(index), separators=(",", ":")).encode()
