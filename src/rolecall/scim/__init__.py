"""SCIM 2.0 (RFC 7643/7644) over the domain services: resources, filters, PATCH, discovery."""
