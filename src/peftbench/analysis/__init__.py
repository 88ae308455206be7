"""The decision layer: dimension scores, Pareto fronts, TOPSIS, scenarios and the recommender.

Everything here reads finished trial records (pandas DataFrames from the store) and never trains.
"""
