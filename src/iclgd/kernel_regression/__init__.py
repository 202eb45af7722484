"""kernel_regression"""
