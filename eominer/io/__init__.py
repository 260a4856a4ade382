"""Reading products: discovery of layouts, band reading onto one grid, the ARD COG."""
