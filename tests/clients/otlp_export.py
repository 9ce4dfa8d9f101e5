"""OpenTelemetry's own Python OTLP/HTTP exporter sending spans to a Sluice station, as a service
instrumented with OpenTelemetry would send them to a collector.

Usage:
  otlp_export.py protos DIR   writes the OTLP trace protos, as the installed opentelemetry-proto
                              package compiled them, under DIR (a schema repository's root)
  otlp_export.py export URL   exports one batch of spans to URL with gzip, then without
                              compression; prints one JSON object: each export's result, and the
                              ExportTraceServiceRequest each sent (base64), uncompressed

Needs: pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http.
"""

import base64
import json
import os
import sys

from google.protobuf import descriptor_pb2

SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}


def type_name(field):
    # A fully qualified name with its leading dot is valid .proto syntax.
    return SCALARS.get(field.type) or field.type_name


def enum_text(enum, indent):
    values = "".join(f"{indent}  {v.name} = {v.number};\n" for v in enum.value)
    return f"{indent}enum {enum.name} {{\n{values}{indent}}}\n"


def message_text(message, indent=""):
    """One message as .proto text: fields (oneofs grouped, maps as map<K, V>), nested types."""
    inner = indent + "  "
    entries = {n.name: n for n in message.nested_type if n.options.map_entry}
    lines, oneofs = [], {}
    for field in message.field:
        entry = entries.get(field.type_name.rsplit(".", 1)[-1])
        if entry is not None:
            key, value = entry.field
            line = f"map<{type_name(key)}, {type_name(value)}> {field.name} = {field.number};"
        else:
            label = ""
            if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
                label = "repeated "
            elif field.proto3_optional:
                label = "optional "
            line = f"{label}{type_name(field)} {field.name} = {field.number};"
        if field.HasField("oneof_index") and not field.proto3_optional:
            oneofs.setdefault(field.oneof_index, []).append(line)
        else:
            lines.append(f"{inner}{line}\n")
    for index, members in oneofs.items():
        body = "".join(f"{inner}  {m}\n" for m in members)
        lines.append(f"{inner}oneof {message.oneof_decl[index].name} {{\n{body}{inner}}}\n")
    for nested in message.nested_type:
        if not nested.options.map_entry:
            lines.append(message_text(nested, inner))
    for enum in message.enum_type:
        lines.append(enum_text(enum, inner))
    return f"{indent}message {message.name} {{\n{''.join(lines)}{indent}}}\n"


def file_text(proto):
    imports = "".join(f'import "{d}";\n' for d in proto.dependency)
    types = [message_text(m) for m in proto.message_type] + [enum_text(e, "") for e in proto.enum_type]
    return f'syntax = "{proto.syntax or "proto2"}";\npackage {proto.package};\n{imports}\n' + "\n".join(types)


def write_protos(root):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    pending, seen = [trace_service_pb2.DESCRIPTOR], set()
    while pending:
        descriptor = pending.pop()
        if descriptor.name in seen:
            continue
        seen.add(descriptor.name)
        proto = descriptor_pb2.FileDescriptorProto.FromString(descriptor.serialized_pb)
        path = os.path.join(root, descriptor.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(file_text(proto))
        pending.extend(descriptor.dependencies)


def export(url):
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    finished = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = provider.get_tracer("sluice-test")
    with tracer.start_as_current_span("checkout", attributes={"order.items": 3}):
        for step in ("reserve", "charge", "ship"):
            with tracer.start_as_current_span(step) as span:
                span.add_event("done", {"step": step})
    spans = finished.get_finished_spans()
    request = base64.b64encode(encode_spans(spans).SerializePartialToString()).decode()
    report = {"spans": len(spans), "request_base64": request}
    for name, compression in (("gzip", Compression.Gzip), ("none", Compression.NoCompression)):
        exporter = OTLPSpanExporter(endpoint=url, compression=compression, timeout=10)
        report[name] = exporter.export(spans).name
        exporter.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    {"protos": write_protos, "export": export}[sys.argv[1]](sys.argv[2])
