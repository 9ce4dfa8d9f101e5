"""Reads Sluice's registry and decodes Sluice-framed messages with Confluent's own Python client.

Usage: confluent_decode.py REGISTRY_URL MESSAGES_JSON

MESSAGES_JSON is a list of {"topic", "format" ("avro"|"json"|"protobuf"), "value_base64"} (a
Protobuf item also names its "message": acme.Payment or acme.Invoice). Prints one JSON list: the
schema fetched by id for each message, with its references, and the decoded value, in order. The
deserializers follow schema references through the registry: a JSON Schema's `$ref`ed documents,
a Protobuf schema's imports.
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


FIELD = descriptor_pb2.FieldDescriptorProto


def message_classes():
    """acme.Payment, and acme.Invoice with the acme.Money it imports, built from descriptors (no
    protoc needed)."""
    pool = descriptor_pool.DescriptorPool()
    payments = descriptor_pb2.FileDescriptorProto(name="payments.proto", package="acme", syntax="proto3")
    payment = payments.message_type.add(name="Payment")
    payment.field.add(name="id", number=1, type=FIELD.TYPE_STRING, label=FIELD.LABEL_OPTIONAL)
    payment.field.add(name="cents", number=2, type=FIELD.TYPE_INT64, label=FIELD.LABEL_OPTIONAL)
    pool.Add(payments)
    money_file = descriptor_pb2.FileDescriptorProto(name="common/money.proto", package="acme", syntax="proto3")
    money = money_file.message_type.add(name="Money")
    money.field.add(name="currency", number=1, type=FIELD.TYPE_STRING, label=FIELD.LABEL_OPTIONAL)
    money.field.add(name="units", number=2, type=FIELD.TYPE_INT64, label=FIELD.LABEL_OPTIONAL)
    pool.Add(money_file)
    invoices = descriptor_pb2.FileDescriptorProto(name="invoices.proto", package="acme", syntax="proto3",
                                                  dependency=["common/money.proto"])
    invoice = invoices.message_type.add(name="Invoice")
    invoice.field.add(name="id", number=1, type=FIELD.TYPE_STRING, label=FIELD.LABEL_OPTIONAL)
    invoice.field.add(name="total", number=2, type=FIELD.TYPE_MESSAGE, type_name=".acme.Money",
                      label=FIELD.LABEL_OPTIONAL)
    pool.Add(invoices)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
            for name in ["acme.Payment", "acme.Invoice"]}


def main():
    url, messages_file = sys.argv[1], sys.argv[2]
    client = SchemaRegistryClient({"url": url})
    classes = message_classes()
    deserializers = {
        "avro": AvroDeserializer(client),
        "json": JSONDeserializer(None, schema_registry_client=client),
        **{name: ProtobufDeserializer(cls, {"use.deprecated.format": False}, client)
           for name, cls in classes.items()},
    }
    results = []
    for item in json.load(open(messages_file)):
        data = base64.b64decode(item["value_base64"])
        (schema_id,) = struct.unpack(">I", data[1:5])
        schema = client.get_schema(schema_id)
        ctx = SerializationContext(item["topic"], MessageField.VALUE)
        deserializer = deserializers[item.get("message", "acme.Payment")
                                     if item["format"] == "protobuf" else item["format"]]
        value = deserializer(data, ctx)
        if item["format"] == "protobuf":
            value = json_format.MessageToDict(value, preserving_proto_field_name=True)
        results.append({
            "schema_id": schema_id,
            "schema_type": schema.schema_type,
            "schema": schema.schema_str,
            "references": [{"name": r.name, "subject": r.subject, "version": r.version}
                           for r in schema.references],
            "value": value,
        })
    print(json.dumps(results))


if __name__ == "__main__":
    main()
