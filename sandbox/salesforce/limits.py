"""The org limits ``GET V/limits`` lists besides the ones the sandbox counts.

The names and maxima are those of a recorded Developer Edition org
(``../shared/reference/salesforce/nango-limits.test.json``): the live resource lists all 71, so the
sandbox does too; each reports its maximum as remaining, except those the sandbox tracks
(``DailyApiRequests``, ``DailyBulkV2QueryJobs``), which ``SalesforceEmulator.limits`` fills in.
"""

from __future__ import annotations

from typing import Any

ORG_LIMITS: dict[str, int] = {
    "AnalyticsExternalDataSizeMB": 40960,
    "CdpAiInferenceApiMonthlyLimit": 500000000,
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentEinsteinDataInsightsStoryCreation": 5,
    "ConcurrentEinsteinDiscoveryStoryCreation": 2,
    "ConcurrentSyncReportRuns": 20,
    "ContentDistBandwidthLimitMB": 51200,
    "ContentDistViewLimit": 50000,
    "ContentPublicationLimit": 2500,
    "DailyAnalyticsDataflowJobExecutions": 60,
    "DailyAnalyticsUploadedFilesSizeMB": 51200,
    "DailyApexCursorLimit": 10000,
    "DailyApexCursorRowsLimit": 100000000,
    "DailyApexPCursorLimit": 200000,
    "DailyApiRequests": 15000,
    "DailyAsyncApexExecutions": 250000,
    "DailyAsyncApexTests": 500,
    "DailyBulkApiBatches": 15000,
    "DailyBulkV2QueryFileStorageMB": 976562,
    "DailyBulkV2QueryJobs": 10000,
    "DailyDeliveredPlatformEvents": 10000,
    "DailyDurableGenericStreamingApiEvents": 10000,
    "DailyDurableStreamingApiEvents": 10000,
    "DailyEinsteinDataInsightsStoryCreation": 1000,
    "DailyEinsteinDiscoveryOptimizationJobRuns": 25,
    "DailyEinsteinDiscoveryPredictAPICalls": 50000,
    "DailyEinsteinDiscoveryPredictionsByCDC": 500000,
    "DailyEinsteinDiscoveryStoryCreation": 100,
    "DailyFunctionsApiCallLimit": 50000,
    "DailyGenericStreamingApiEvents": 10000,
    "DailyMetadataRetrievesWithDependencies": 25,
    "DailyServiceEmailAgentforceCalls": 5000,
    "DailyStandardVolumePlatformEvents": 10000,
    "DailyStreamingApiEvents": 10000,
    "DailyWorkflowEmails": 8040,
    "DataStorageMB": 5,
    "DurableStreamingApiConcurrentClients": 20,
    "ExternalServicesActiveObjects": 3000,
    "ExternalServicesActiveOperations": 3000,
    "ExternalServicesObjectProperties": 400000,
    "ExternalServicesObjects": 10000,
    "ExternalServicesOperations": 10000,
    "ExternalServicesRegistrations": 700,
    "FileStorageMB": 20,
    "HourlyAsyncReportRuns": 1200,
    "HourlyDashboardRefreshes": 200,
    "HourlyDashboardResults": 5000,
    "HourlyDashboardStatuses": 999999999,
    "HourlyElevateAsyncReportRuns": 1200,
    "HourlyElevateSyncReportRuns": 500,
    "HourlyLongTermIdMapping": 100000,
    "HourlyManagedContentPublicRequests": 50000,
    "HourlyODataCallout": 1000,
    "HourlyPublishedPlatformEvents": 50000,
    "HourlyPublishedStandardVolumePlatformEvents": 1000,
    "HourlyShortTermIdMapping": 100000,
    "HourlySyncReportRuns": 500,
    "HourlyTimeBasedWorkflow": 1000,
    "MassEmail": 10,
    "MaxContentDocumentsLimit": 30000000,
    "MonthlyEinsteinDiscoveryStoryCreation": 500,
    "Package2VersionCreates": 6,
    "Package2VersionCreatesWithoutValidation": 500,
    "PermissionSets": 1500,
    "PlatformEventTriggersWithParallelProcessing": 5,
    "PrivateConnectOutboundCalloutHourlyLimitMB": 0,
    "PublishCallbackUsageInApex": 5242880,
    "ScheduledFlowRunLimit": 250000,
    "ScheduledPathRunLimit": 250000,
    "SingleEmail": 15,
    "StreamingApiConcurrentClients": 20,
}


def org_limits() -> dict[str, Any]:
    """Every limit at its maximum; ``PermissionSets`` nests ``CreateCustom`` as recorded."""
    out: dict[str, Any] = {name: {"Max": most, "Remaining": most}
                           for name, most in ORG_LIMITS.items()}
    out["PermissionSets"]["CreateCustom"] = {"Max": 1000, "Remaining": 1000}
    return out
