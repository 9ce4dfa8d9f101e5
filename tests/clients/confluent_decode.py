"""Reads Sluice's registry and decodes Sluice-framed messages with Confluent's own Python client.

Usage: confluent_decode.py REGISTRY_URL MESSAGES_JSON

MESSAGES_JSON is a list of {"topic", "format" ("avro"|"json"|"protobuf"), "value_base64"}. Prints
one JSON object: the schema fetched by id for each message, and the decoded values, in order.
Needs: pip install "confluent-kafka[avro,json,protobuf,schemaregistry]".
"""

import base64
import json
import struct
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def payment_class():
    """The acme.Payment message class, built from a descriptor (no protoc needed)."""
    file = descriptor_pb2.FileDescriptorProto(name="payments.proto", package="acme", syntax="proto3")
    message = file.message_type.add(name="Payment")
    message.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    message.field.add(name="cents", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.Payment"))


def main():
    url, messages_file = sys.argv[1], sys.argv[2]
    client = SchemaRegistryClient({"url": url})
    deserializers = {
        "avro": AvroDeserializer(client),
        "json": JSONDeserializer(None, schema_registry_client=client),
        "protobuf": ProtobufDeserializer(payment_class(), {"use.deprecated.format": False}, client),
    }
    results = []
    for item in json.load(open(messages_file)):
        data = base64.b64decode(item["value_base64"])
        (schema_id,) = struct.unpack(">I", data[1:5])
        schema = client.get_schema(schema_id)
        ctx = SerializationContext(item["topic"], MessageField.VALUE)
        value = deserializers[item["format"]](data, ctx)
        if item["format"] == "protobuf":
            value = json_format.MessageToDict(value, preserving_proto_field_name=True)
        results.append({
            "schema_id": schema_id,
            "schema_type": schema.schema_type,
            "schema": schema.schema_str,
            "value": value,
        })
    print(json.dumps(results))


if __name__ == "__main__":
    main()
