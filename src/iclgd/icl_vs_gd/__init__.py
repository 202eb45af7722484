"""icl_vs_gd"""
