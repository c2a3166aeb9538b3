"""anywidget views of the span store and the analysis result (front end in ``js/``)."""

from .views import Clusters, Dashboard, HaloWidget, Insights, TraceList, Waterfall

__all__ = ["Clusters", "Dashboard", "HaloWidget", "Insights", "TraceList", "Waterfall"]
