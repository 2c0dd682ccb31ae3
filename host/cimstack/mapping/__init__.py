"""Mapping layers onto CIM macros: tiling, block structure and cycle counts."""
