"""A small real example: record a fact for a run, read the stream back."""

import asyncio

from mfm_store import ArtifactKind, MemoryStore, RunId, canonical_json_bytes


async def main() -> None:
    async with MemoryStore() as store:
        run = RunId.new()
        payload = await store.put(ArtifactKind.FACT_PAYLOAD, canonical_json_bytes({"price": 42}))
        binding = await store.bind_fact(run, "http:get|/price", payload)
        again = await store.bind_fact(run, "http:get|/price", payload)
        print(f"run {run}: fact bound at seq {binding.seq}, rebinding inserted={again.inserted}")
        for env in await store.read_range(run):
            print(env.to_json())


if __name__ == "__main__":
    asyncio.run(main())
