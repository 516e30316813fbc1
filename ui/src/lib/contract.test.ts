// The Backend contract against the mock, always; against the real hub when the app's contract
// test (src-tauri/tests/contract.rs) runs this file with AIDMESH_CONTRACT_SOCKET set.
import { backendContract } from "./contract";
import { mockBackend } from "./mock";
import { bridgeBackend } from "./contract-bridge";

const socket = process.env.AIDMESH_CONTRACT_SOCKET;
if (process.env.AIDMESH_CONTRACT_ONLY !== "hub") backendContract("mock", async () => mockBackend());
if (socket) backendContract("real hub", () => bridgeBackend(socket));
