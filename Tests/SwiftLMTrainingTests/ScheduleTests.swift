import Foundation
import Testing

@testable import SwiftLMTraining

@Suite("Learning-rate schedules")
struct ScheduleTests {
    @Test("warmup then cosine matches PyTorch's LambdaLR, past the end included")
    func warmupCosineMatchesPyTorch() throws {
        let reference = try OptimizerReference.load().schedule
        let schedule = LearningRateSchedule.warmupCosine(
            peak: Float(reference.peak), warmupSteps: reference.warmupSteps,
            totalSteps: reference.totalSteps, minimum: Float(reference.minimum))
        for (step, expected) in reference.learningRates.enumerated() {
            let rate = Double(schedule.learningRate(atStep: step))
            #expect(abs(rate - expected) <= optimizerTolerance * expected, "step \(step)")
        }
    }

    @Test("the warmup climbs linearly to the peak and the decay ends at the minimum")
    func warmupCosineShape() {
        let schedule = LearningRateSchedule.warmupCosine(
            peak: 1, warmupSteps: 4, totalSteps: 12, minimum: 0.1)
        #expect(schedule.learningRate(atStep: 0) == 0.25)
        #expect(schedule.learningRate(atStep: 3) == 1)
        #expect(schedule.learningRate(atStep: 4) == 1)
        #expect(abs(schedule.learningRate(atStep: 8) - 0.55) < 1e-6)
        #expect(schedule.learningRate(atStep: 12) == 0.1)
        #expect(schedule.learningRate(atStep: 1000) == 0.1)
    }

    @Test("degenerate schedules from a file give rates instead of trapping")
    func degenerateSchedules() {
        let noWarmup = LearningRateSchedule.warmupCosine(
            peak: 2, warmupSteps: 0, totalSteps: 10, minimum: 0)
        #expect(noWarmup.learningRate(atStep: 0) == 2)
        let noDecay = LearningRateSchedule.warmupCosine(
            peak: 2, warmupSteps: 5, totalSteps: 3, minimum: 0.5)
        #expect(noDecay.learningRate(atStep: 4) == 2)
        #expect(noDecay.learningRate(atStep: 5) == 0.5)
    }

    @Test("a constant schedule is constant")
    func constant() {
        let schedule = LearningRateSchedule.constant(3e-4)
        #expect((0..<100).allSatisfy { schedule.learningRate(atStep: $0) == 3e-4 })
    }

    @Test("schedules survive a JSON round trip, as checkpoints store them")
    func codableRoundTrip() throws {
        let schedules: [LearningRateSchedule] = [
            .constant(1e-3),
            .warmupCosine(peak: 3e-3, warmupSteps: 4, totalSteps: 20, minimum: 3e-4),
        ]
        let data = try JSONEncoder().encode(schedules)
        #expect(try JSONDecoder().decode([LearningRateSchedule].self, from: data) == schedules)
    }
}
