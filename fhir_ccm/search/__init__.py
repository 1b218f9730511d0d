"""FHIR search (http://hl7.org/fhir/R4/search.html).

``parameters``: which SearchParameters each type has (from the vendored R4 set);
``rows``: the index values a resource yields; ``extract``: computing them from
each parameter's FHIRPath expression at write time; ``parse``: the query string
as a value; ``sql``: that value as SQL with bound parameters.
"""
