from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScalarColumns(_message.Message):
    __slots__ = ("tag", "steps", "wall_times", "values")
    TAG_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    WALL_TIMES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    tag: str
    steps: bytes
    wall_times: bytes
    values: bytes
    def __init__(self, tag: _Optional[str] = ..., steps: _Optional[bytes] = ..., wall_times: _Optional[bytes] = ..., values: _Optional[bytes] = ...) -> None: ...

class ScalarRows(_message.Message):
    __slots__ = ("tags", "steps", "wall_times", "values")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    WALL_TIMES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    steps: bytes
    wall_times: bytes
    values: bytes
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., steps: _Optional[bytes] = ..., wall_times: _Optional[bytes] = ..., values: _Optional[bytes] = ...) -> None: ...

class HistogramSummary(_message.Message):
    __slots__ = ("count", "min", "max", "sum", "sum_squares", "nan_count", "posinf_count", "neginf_count", "bucket_counts", "bucket_edges", "basis_values")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    SUM_SQUARES_FIELD_NUMBER: _ClassVar[int]
    NAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    POSINF_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEGINF_COUNT_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_EDGES_FIELD_NUMBER: _ClassVar[int]
    BASIS_VALUES_FIELD_NUMBER: _ClassVar[int]
    count: int
    min: float
    max: float
    sum: float
    sum_squares: float
    nan_count: int
    posinf_count: int
    neginf_count: int
    bucket_counts: _containers.RepeatedScalarFieldContainer[int]
    bucket_edges: _containers.RepeatedScalarFieldContainer[float]
    basis_values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, count: _Optional[int] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., sum: _Optional[float] = ..., sum_squares: _Optional[float] = ..., nan_count: _Optional[int] = ..., posinf_count: _Optional[int] = ..., neginf_count: _Optional[int] = ..., bucket_counts: _Optional[_Iterable[int]] = ..., bucket_edges: _Optional[_Iterable[float]] = ..., basis_values: _Optional[_Iterable[float]] = ...) -> None: ...

class HistogramPoint(_message.Message):
    __slots__ = ("step", "wall_time", "summary")
    STEP_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    step: int
    wall_time: float
    summary: HistogramSummary
    def __init__(self, step: _Optional[int] = ..., wall_time: _Optional[float] = ..., summary: _Optional[_Union[HistogramSummary, _Mapping]] = ...) -> None: ...

class HistogramColumns(_message.Message):
    __slots__ = ("tag", "points")
    TAG_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    tag: str
    points: _containers.RepeatedCompositeFieldContainer[HistogramPoint]
    def __init__(self, tag: _Optional[str] = ..., points: _Optional[_Iterable[_Union[HistogramPoint, _Mapping]]] = ...) -> None: ...

class GraphNode(_message.Message):
    __slots__ = ("name", "op", "inputs", "shape", "has_shape", "dtype", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    HAS_SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    op: str
    inputs: _containers.RepeatedScalarFieldContainer[str]
    shape: _containers.RepeatedScalarFieldContainer[int]
    has_shape: bool
    dtype: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., op: _Optional[str] = ..., inputs: _Optional[_Iterable[str]] = ..., shape: _Optional[_Iterable[int]] = ..., has_shape: _Optional[bool] = ..., dtype: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Graph(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[GraphNode]
    def __init__(self, nodes: _Optional[_Iterable[_Union[GraphNode, _Mapping]]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "name", "experiment", "params_json", "status", "started_at", "finished_at", "updated_at", "tags")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    experiment: str
    params_json: str
    status: str
    started_at: float
    finished_at: float
    updated_at: float
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., experiment: _Optional[str] = ..., params_json: _Optional[str] = ..., status: _Optional[str] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("experiment", "run", "params_json", "wall_time", "resume", "client_id")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    run: str
    params_json: str
    wall_time: float
    resume: bool
    client_id: str
    def __init__(self, experiment: _Optional[str] = ..., run: _Optional[str] = ..., params_json: _Optional[str] = ..., wall_time: _Optional[float] = ..., resume: _Optional[bool] = ..., client_id: _Optional[str] = ...) -> None: ...

class TagLastStep(_message.Message):
    __slots__ = ("tag", "kind", "last_step")
    TAG_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    tag: str
    kind: str
    last_step: int
    def __init__(self, tag: _Optional[str] = ..., kind: _Optional[str] = ..., last_step: _Optional[int] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("run", "resumed", "last_steps", "accepts_rows")
    RUN_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    LAST_STEPS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_ROWS_FIELD_NUMBER: _ClassVar[int]
    run: Run
    resumed: bool
    last_steps: _containers.RepeatedCompositeFieldContainer[TagLastStep]
    accepts_rows: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., resumed: _Optional[bool] = ..., last_steps: _Optional[_Iterable[_Union[TagLastStep, _Mapping]]] = ..., accepts_rows: _Optional[bool] = ...) -> None: ...

class WriteBatchRequest(_message.Message):
    __slots__ = ("client_id", "sequence", "run_id", "scalars", "histograms", "rows")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SCALARS_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    sequence: int
    run_id: int
    scalars: _containers.RepeatedCompositeFieldContainer[ScalarColumns]
    histograms: _containers.RepeatedCompositeFieldContainer[HistogramColumns]
    rows: _containers.RepeatedCompositeFieldContainer[ScalarRows]
    def __init__(self, client_id: _Optional[str] = ..., sequence: _Optional[int] = ..., run_id: _Optional[int] = ..., scalars: _Optional[_Iterable[_Union[ScalarColumns, _Mapping]]] = ..., histograms: _Optional[_Iterable[_Union[HistogramColumns, _Mapping]]] = ..., rows: _Optional[_Iterable[_Union[ScalarRows, _Mapping]]] = ...) -> None: ...

class WriteBatchResponse(_message.Message):
    __slots__ = ("scalar_points", "histogram_points", "duplicate")
    SCALAR_POINTS_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_POINTS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    scalar_points: int
    histogram_points: int
    duplicate: bool
    def __init__(self, scalar_points: _Optional[int] = ..., histogram_points: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class FinishRunRequest(_message.Message):
    __slots__ = ("run_id", "status", "wall_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    status: str
    wall_time: float
    def __init__(self, run_id: _Optional[int] = ..., status: _Optional[str] = ..., wall_time: _Optional[float] = ...) -> None: ...

class FinishRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetGraphRequest(_message.Message):
    __slots__ = ("run_id", "graph")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    graph: Graph
    def __init__(self, run_id: _Optional[int] = ..., graph: _Optional[_Union[Graph, _Mapping]] = ...) -> None: ...

class SetGraphResponse(_message.Message):
    __slots__ = ("node_count",)
    NODE_COUNT_FIELD_NUMBER: _ClassVar[int]
    node_count: int
    def __init__(self, node_count: _Optional[int] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class DeleteRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteExperimentRequest(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    def __init__(self, experiment: _Optional[str] = ...) -> None: ...

class DeleteExperimentResponse(_message.Message):
    __slots__ = ("deleted_runs",)
    DELETED_RUNS_FIELD_NUMBER: _ClassVar[int]
    deleted_runs: int
    def __init__(self, deleted_runs: _Optional[int] = ...) -> None: ...

class RenameRunRequest(_message.Message):
    __slots__ = ("run_id", "new_name")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    new_name: str
    def __init__(self, run_id: _Optional[int] = ..., new_name: _Optional[str] = ...) -> None: ...

class RenameRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetRunTagsRequest(_message.Message):
    __slots__ = ("run_id", "tags")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class SetRunTagsResponse(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    def __init__(self, experiment: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class ListTagsRequest(_message.Message):
    __slots__ = ("run_id", "page_size", "page_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    page_size: int
    page_token: str
    def __init__(self, run_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("name", "kind", "last_step")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    last_step: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., last_step: _Optional[int] = ...) -> None: ...

class ListTagsResponse(_message.Message):
    __slots__ = ("tags", "next_page_token")
    TAGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    next_page_token: str
    def __init__(self, tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReadScalarsRequest(_message.Message):
    __slots__ = ("run_ids", "tags", "max_points", "min_step", "max_step", "limit")
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    MIN_STEP_FIELD_NUMBER: _ClassVar[int]
    MAX_STEP_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    max_points: int
    min_step: int
    max_step: int
    limit: int
    def __init__(self, run_ids: _Optional[_Iterable[int]] = ..., tags: _Optional[_Iterable[str]] = ..., max_points: _Optional[int] = ..., min_step: _Optional[int] = ..., max_step: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ScalarSeriesData(_message.Message):
    __slots__ = ("run_id", "columns", "total", "next_step")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    columns: ScalarColumns
    total: int
    next_step: int
    def __init__(self, run_id: _Optional[int] = ..., columns: _Optional[_Union[ScalarColumns, _Mapping]] = ..., total: _Optional[int] = ..., next_step: _Optional[int] = ...) -> None: ...

class ReadScalarsResponse(_message.Message):
    __slots__ = ("series",)
    SERIES_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[ScalarSeriesData]
    def __init__(self, series: _Optional[_Iterable[_Union[ScalarSeriesData, _Mapping]]] = ...) -> None: ...

class ReadHistogramsRequest(_message.Message):
    __slots__ = ("run_ids", "tags", "max_steps", "min_step")
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MIN_STEP_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    max_steps: int
    min_step: int
    def __init__(self, run_ids: _Optional[_Iterable[int]] = ..., tags: _Optional[_Iterable[str]] = ..., max_steps: _Optional[int] = ..., min_step: _Optional[int] = ...) -> None: ...

class HistogramSeriesData(_message.Message):
    __slots__ = ("run_id", "columns", "total")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    columns: HistogramColumns
    total: int
    def __init__(self, run_id: _Optional[int] = ..., columns: _Optional[_Union[HistogramColumns, _Mapping]] = ..., total: _Optional[int] = ...) -> None: ...

class ReadHistogramsResponse(_message.Message):
    __slots__ = ("series",)
    SERIES_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[HistogramSeriesData]
    def __init__(self, series: _Optional[_Iterable[_Union[HistogramSeriesData, _Mapping]]] = ...) -> None: ...

class GetGraphRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: int
    def __init__(self, run_id: _Optional[int] = ...) -> None: ...

class GetGraphResponse(_message.Message):
    __slots__ = ("has_graph", "graph")
    HAS_GRAPH_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    has_graph: bool
    graph: Graph
    def __init__(self, has_graph: _Optional[bool] = ..., graph: _Optional[_Union[Graph, _Mapping]] = ...) -> None: ...
